"""What-if in the cloud for any device: its twin rolled forward from its last synced
summaries (the same int8 model and the same state rule as on the device).

The twin: the device's fine-tuned twin (``cloud_sync.training.twin``, verified with the
release public key) when there is one, else the shipped default twin; ``twin_source``
says which. (The device does not report a twin of its own yet: twins are not released
through OTA.)
The cloud has no copy of the device's alarm rules: the caller passes the limits to
check (``limits``), e.g. the fleet page sends the alarm levels the device reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from cloud_sync.errors import ScenarioRefused, TwinStateMissing
from cloud_sync.training.twin import device_twin_dir
from cloud_sync.twin import list_summaries
from edge_agent.twin.errors import ScenarioInvalid, TwinError, TwinStateIncomplete
from edge_agent.twin.model import LoadedTwin, load_twin
from edge_agent.twin.scenario import Scenario
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
from edge_agent.twin.state import IntervalMean, history_from_summaries
from edge_agent.twin.whatif import Limit, WhatIfAnswer, what_if
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.manifest import MANIFEST_FILE
from edgetwin_contracts.signing import load_public_key

DEFAULT_BOUNDS = {"load": (0.0, 1.0)}


class LimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    rule: Annotated[str, Field(min_length=1, max_length=128)]
    channel: Annotated[str, Field(min_length=1, max_length=64)]
    level: float
    below: bool = False


class CloudScenario(Scenario):
    """A scenario plus the level limits to look for a crossing of."""

    limits: Annotated[list[LimitIn], Field(max_length=64)] = Field(default_factory=list)


class CloudWhatIf(BaseModel):
    device: str
    twin_source: str
    state_end: float
    """UNIX time at which the last synced period used as the state ended."""
    answer: WhatIfAnswer


class TwinCache:
    """Loaded twins, verified once per bundle version (loading checks golden vectors).

    Args:
        reports_dir: where device twins are (``<reports_dir>/<device>/twin``).
        public_key: the release key a device twin must be signed with; None: device
            twins are not used.
    """

    def __init__(self, reports_dir: Path, public_key: Path | None) -> None:
        self._reports_dir = reports_dir
        self._public_key = public_key
        self._loaded: dict[tuple[Path, bytes], LoadedTwin] = {}

    def for_device(self, device: str) -> tuple[LoadedTwin, str]:
        """The device's twin and where it comes from."""
        folder = device_twin_dir(self._reports_dir, device)
        if self._public_key is not None and (folder / MANIFEST_FILE).is_file():
            twin = self._load(folder, load_public_key(self._public_key))
            m = twin.manifest.model
            return twin, f"device twin {m.name} {m.version} ({folder})"
        twin = self._load(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
        m = twin.manifest.model
        return twin, f"shipped default twin {m.name} {m.version} (no device twin here)"

    def _load(self, folder: Path, key: Ed25519PublicKey) -> LoadedTwin:
        stamp = (folder, (folder / MANIFEST_FILE).read_bytes())
        if stamp not in self._loaded:
            try:
                self._loaded[stamp] = load_twin(folder, key)
            except (BundleRejected, TwinError) as exc:
                raise TwinStateMissing(f"the twin {folder} does not load: {exc}") from None
        return self._loaded[stamp]


def cloud_what_if(
    engine: Engine, device: str, scenario: CloudScenario, cache: TwinCache
) -> CloudWhatIf:
    """Answer ``scenario`` for ``device`` from its synced summaries.

    Raises DeviceNotFound, ScenarioRefused (422), TwinStateMissing (409).
    """
    twin, source = cache.for_device(device)
    w, period = twin.spec.window_steps, twin.period_s
    rows: list[IntervalMean] = []
    for channel in twin.model.channels:
        # enough of the newest intervals for w periods even at 1 s summaries
        for s in list_summaries(engine, device, channel, None, (w + 2) * max(1, round(period))):
            rows.append(IntervalMean(s.channel, s.start, s.interval_s, s.count, s.mean))
    try:
        history, end = history_from_summaries(twin.model.channels, rows, period, w)
    except TwinStateIncomplete as exc:
        raise TwinStateMissing(str(exc)) from None
    limits = [Limit(x.rule, x.channel, x.level, x.below) for x in scenario.limits]
    base = Scenario(controls=scenario.controls, horizon_minutes=scenario.horizon_minutes)
    try:
        answer = what_if(twin, history, base, limits, DEFAULT_BOUNDS)
    except ScenarioInvalid as exc:
        loc = ["body", *exc.field.split(".")]
        raise ScenarioRefused([{"loc": loc, "msg": str(exc), "type": "scenario_invalid"}]) from None
    return CloudWhatIf(device=device, twin_source=source, state_end=end, answer=answer)
