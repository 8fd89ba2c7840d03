"""The [twin] section of the agent config (docs/twin.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from edge_agent.twin.cross.config import CrossConfig
from edgetwin_common.config import Name, Strict


class TwinConfig(Strict):
    bundle: Path | None = None
    """Twin bundle folder; None: the default twin shipped with the agent (the pump)."""
    public_key: Path | None = None
    """Release public key (PEM) of ``bundle``; None: the shipped twin's key."""
    controls: Annotated[list[Name], Field(min_length=1)] = Field(default_factory=lambda: ["load"])
    """Channels the operator sets (planned in a scenario); they must be the bundle's."""
    bounds: dict[Name, Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(
        default_factory=lambda: {"load": [0.0, 1.0]}
    )
    """Allowed [low, high] of each control in a scenario (TOML: ``load = [0.0, 1.0]``);
    a value outside is refused."""
    twins_dir: Path = Path("twins")
    """Twins installed over the air and the current-twin pointer; relative to [agent]
    data_dir (docs/ota.md, "The twin's releases")."""
    guard_periods: Annotated[int, Field(ge=1, le=10_000)] = 10
    """Twin periods after a twin update during which the previous twin runs in shadow
    (10 at the default twin's 1-minute period: 10 minutes)."""
    guard_steps: Annotated[int, Field(ge=1, le=1440)] = 10
    """The guard also compares roll-outs this many periods ahead under the actual
    controls (capped at the twins' horizons)."""
    guard_margin: Annotated[float, Field(ge=0, le=10)] = 0.10
    """The new twin's error may be at most this much worse (0.10 = 10 %) than the
    previous twin's, one step and guard_steps ahead; worse: automatic rollback."""
    cross: CrossConfig = CrossConfig()
    """The cross-channel surprise (docs/anomaly-score.md): what each channel reads
    against what the twin predicts from the others, alarmed by "cross_above" rules."""

    @model_validator(mode="after")
    def _consistent(self) -> TwinConfig:
        if self.bundle is not None and self.public_key is None:
            raise ValueError("a twin bundle of your own needs public_key (its release key)")
        for name, (low, high) in self.bounds.items():
            if name not in self.controls:
                raise ValueError(f"bounds.{name}: not one of controls {self.controls}")
            if not low < high:
                raise ValueError(f"bounds.{name}: low {low} must be below high {high}")
        return self
