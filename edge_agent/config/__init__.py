"""The agent's one TOML config: a strict pydantic model, validated once at start.

``load_config(path)`` parses and validates without touching anything else (no ports
opened, no files besides the config read). Every problem is reported with its key
path, the offending value and a message (``ConfigInvalid.problems``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.actions.log import LogActionConfig
from edge_agent.actions.registry import ActionConfig
from edge_agent.alarms.rules.registry import AlarmRule, rule_list_problems
from edge_agent.anomaly.registry import ScoreConfig
from edge_agent.anomaly.residual import ResidualScoreConfig
from edge_agent.cleaning.config import CleaningConfig
from edge_agent.http.config import HttpConfig
from edge_agent.model.ota.config import OtaConfig
from edge_agent.sources.registry import SourceConfig
from edge_agent.store.config import StoreConfig
from edge_agent.sync.config import SyncConfig
from edgetwin_common.config import Name, Strict, read_toml, validate_toml


class AgentSection(Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)] = "edge-agent"
    """This device's name in logs and the twin."""
    data_dir: Path = Path("/var/lib/edge-agent")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    on_model_failure: Literal["exit", "serve-status"] = "exit"
    """When the model cannot be loaded at start: exit (code 1 or 3), or keep serving the
    HTTP API and status page, which say why (nothing else runs)."""
    stall_after_s: Annotated[float, Field(gt=0, le=86400)] = 30.0
    """Under systemd's watchdog: a connected source with no reading for this long is a
    stalled pipeline, and the watchdog pings stop (systemd restarts the agent). Set it
    above the slowest source's interval between lines."""


class ModelConfig(Strict):
    bundle: Path | None = None
    """Model bundle folder; None: the generic model shipped with the agent."""
    public_key: Path | None = None
    """Release public key (PEM); None: the key of the shipped model."""
    backend: Literal["auto", "ai-edge-litert", "tflite-runtime"] = "auto"
    num_threads: Annotated[int, Field(ge=1, le=8)] = 1

    @model_validator(mode="after")
    def _key_for_own_bundle(self) -> ModelConfig:
        if self.bundle is not None and self.public_key is None:
            raise ValueError("a bundle of your own needs public_key (its release key)")
        return self


class ChannelConfig(Strict):
    unit: str = ""
    description: str = ""
    sample_period_s: Annotated[float, Field(gt=0)] | None = None
    """Resample to this period (the model's sample period); None: use readings as they come."""
    max_gap_s: Annotated[float, Field(gt=0)] | None = None
    """A gap longer than this restarts the window (no interpolation across it);
    default: 10 sample periods, or never when sample_period_s is None."""
    cleaning: CleaningConfig = CleaningConfig()
    score: ScoreConfig = ResidualScoreConfig()
    """The anomaly score method and its settings (docs/anomaly-score.md)."""


class AgentConfig(Strict):
    agent: AgentSection = AgentSection()
    model: ModelConfig = ModelConfig()
    sources: list[SourceConfig] = Field(default_factory=list)
    channel_defaults: ChannelConfig = ChannelConfig()
    """Settings for channels that a source produces but [channels] does not name."""
    channels: dict[Name, ChannelConfig] = Field(default_factory=dict)
    alarms: list[AlarmRule] = Field(default_factory=list)
    actions: list[ActionConfig] = Field(default_factory=list)
    store: StoreConfig = StoreConfig()
    http: HttpConfig = HttpConfig()
    sync: SyncConfig = SyncConfig()
    ota: OtaConfig = OtaConfig()

    def channel(self, name: str) -> ChannelConfig:
        return self.channels.get(name, self.channel_defaults)

    def action_names(self) -> set[str]:
        return {a.name for a in self.actions} | {"log"}

    @model_validator(mode="after")
    def _cross_references(self) -> AgentConfig:
        problems: list[str] = []
        _unique("sources", [s.name for s in self.sources], problems)
        _unique("actions", [a.name for a in self.actions], problems)
        for problem in rule_list_problems(self.alarms, self.action_names()):
            problems.append(f"{problem.path}: {problem.message}")
        produced = {channel for s in self.sources for channel in s.channel_names()}
        known_channels = produced | set(self.channels)
        for i, rule in enumerate(self.alarms):
            if rule.channel != "*" and known_channels and rule.channel not in known_channels:
                problems.append(
                    f"alarms.{i}.channel: unknown channel {rule.channel!r} "
                    f"(known: {', '.join(sorted(known_channels))})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def actions_by_name(self) -> dict[str, ActionConfig]:
        """Configured actions plus the implicit "log" action (warning level)."""
        found: dict[str, ActionConfig] = {"log": LogActionConfig(type="log", name="log")}
        found.update({a.name: a for a in self.actions})
        return found


def _unique(section: str, names: list[str], problems: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"{section}: name {name!r} is used twice")
        seen.add(name)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    path: Path
    config: AgentConfig

    def resolve(self, path: Path) -> Path:
        """A path from the config, relative paths taken from [agent] data_dir."""
        return path if path.is_absolute() else self.config.agent.data_dir / path


def parse_config(text: str, source: str = "<config>") -> AgentConfig:
    """Validate TOML text. Raises ConfigInvalid with one ConfigProblem per error."""
    return validate_toml(text, AgentConfig, source)


def load_config(path: Path) -> LoadedConfig:
    """Read and validate a config file. Raises ConfigInvalid (also for an unreadable file)."""
    return LoadedConfig(path, read_toml(path, AgentConfig))
