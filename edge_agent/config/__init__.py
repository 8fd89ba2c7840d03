"""The agent's one TOML config: a strict pydantic model, validated once at start.

``load_config(path)`` parses and validates without touching anything else (no ports
opened, no files besides the config read). Every problem is reported with its key
path, the offending value and a message (``ConfigInvalid.problems``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from edge_agent.actions.log import LogActionConfig
from edge_agent.actions.modbus_setpoint import bus_problems
from edge_agent.actions.registry import ActionConfig, is_control_output
from edge_agent.alarms.rules.registry import AlarmRule, rule_list_problems
from edge_agent.anomaly.registry import ScoreConfig
from edge_agent.anomaly.residual import ResidualScoreConfig
from edge_agent.cleaning.config import CleaningConfig
from edge_agent.http.config import HttpConfig
from edge_agent.model.ota.config import OtaConfig
from edge_agent.sources.registry import SourceConfig
from edge_agent.store.config import StoreConfig
from edge_agent.sync.config import SyncConfig
from edge_agent.twin.advisor.config import AdvisorConfig
from edge_agent.twin.config import TwinConfig
from edgetwin_common.config import Name, Strict, note_problem, read_toml, validate_toml

T = TypeVar("T")


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
    twin: TwinConfig | None = None
    """The cross-channel twin answering what-if scenarios; None: no twin (docs/twin.md)."""
    advisor: AdvisorConfig | None = None
    """The advisor: the control value that keeps predictions inside the alarm limits,
    written only when enabled, behind guards (docs/advisor.md)."""

    def channel(self, name: str) -> ChannelConfig:
        return self.channels.get(name, self.channel_defaults)

    def action_names(self) -> set[str]:
        return {a.name for a in self.actions} | {"log"}

    @model_validator(mode="after")
    def _cross_references(self) -> AgentConfig:
        problems = _reference_problems(
            list(enumerate(self.sources)),
            list(enumerate(self.actions)),
            list(enumerate(self.alarms)),
            set(self.channels),
        )
        output = self.advisor.output if self.advisor is not None else None
        if output is not None and output not in {
            a.name for a in self.actions if is_control_output(a)
        }:
            problems.append(
                f"advisor.output: {output!r} is not a control output in [[actions]] "
                "(setpoint, modbus_setpoint, gpio_pwm, or webhook with [actions.control])"
            )
        if self.advisor is not None and self.advisor.predictor == "twin" and self.twin is None:
            problems.append(
                'advisor.predictor: "twin" needs a [twin] section (the model it rolls '
                'forward): add [twin] or set advisor.predictor = "pump-physics"'
            )
        cross_on = self.twin is not None and self.twin.cross.enabled
        problems += [
            f'alarms.{i}.type: "cross_above" needs [twin] with [twin.cross] enabled (the '
            "model that predicts each channel from the others)"
            for i, rule in enumerate(self.alarms)
            if rule.type == "cross_above" and not cross_on
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(
        cls, data: Any, handler: ModelWrapValidatorHandler[AgentConfig], info: ValidationInfo
    ) -> AgentConfig:
        """When some fields fail, the checks across tables above never run: run them on
        the tables that do validate, so one pass names every problem."""
        try:
            return handler(data)
        except ValidationError as exc:
            if isinstance(data, dict) and not any(not e["loc"] for e in exc.errors()):
                for problem in _salvaged_reference_problems(data):
                    path, _, message = problem.partition(": ")
                    note_problem(info, path, message)
            raise

    def actions_by_name(self) -> dict[str, ActionConfig]:
        """Configured actions plus the implicit "log" action (warning level)."""
        found: dict[str, ActionConfig] = {"log": LogActionConfig(type="log", name="log")}
        found.update({a.name: a for a in self.actions})
        return found


def _reference_problems(
    sources: list[tuple[int, SourceConfig]],
    actions: list[tuple[int, ActionConfig]],
    alarms: list[tuple[int, AlarmRule]],
    channels: set[str],
    *,
    check_channels: bool = True,
) -> list[str]:
    """Names used twice, alarms naming an unknown action or channel ("path: message");
    each item with its index in the file (a salvaged list may have gaps)."""
    problems: list[str] = []
    _unique("sources", [s.name for _, s in sources], problems)
    _unique("actions", [a.name for _, a in actions], problems)
    index = [i for i, _ in alarms]
    action_names = {a.name for _, a in actions} | {"log"}
    for problem in rule_list_problems([rule for _, rule in alarms], action_names):
        # rule_list_problems counts from 0 in the list it is given: the file's index back.
        n, _, rest = problem.path.removeprefix("alarms.").partition(".")
        problems.append(f"alarms.{index[int(n)]}.{rest}: {problem.message}")
    known_channels = {c for _, s in sources for c in s.channel_names()} | channels
    for i, rule in alarms if check_channels else []:
        if rule.channel != "*" and known_channels and rule.channel not in known_channels:
            problems.append(
                f"alarms.{i}.channel: unknown channel {rule.channel!r} "
                f"(known: {', '.join(sorted(known_channels))})"
            )
    return problems + bus_problems(sources, actions)


def _salvaged_reference_problems(data: dict[str, Any]) -> list[str]:
    """``_reference_problems`` over the items of each list that validate on their own.
    An unknown channel is only reported when every source validated (an invalid source
    may be the one that produces it)."""

    def valid(key: str, adapter: TypeAdapter[T]) -> list[tuple[int, T]]:
        items = data.get(key)
        found: list[tuple[int, T]] = []
        for i, item in enumerate(items if isinstance(items, list) else []):
            try:
                found.append((i, adapter.validate_json(json.dumps(item, default=str))))
            except (ValidationError, TypeError, ValueError):
                continue
        return found

    sources = valid("sources", _SOURCE)
    all_sources = len(sources) == len(data.get("sources") or [])
    channels = data.get("channels")
    named = set(channels) if isinstance(channels, dict) else set()
    return _reference_problems(
        sources,
        valid("actions", _ACTION),
        valid("alarms", _RULE),
        named,
        check_channels=all_sources,
    )


_SOURCE: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)
_ACTION: TypeAdapter[ActionConfig] = TypeAdapter(ActionConfig)
_RULE: TypeAdapter[AlarmRule] = TypeAdapter(AlarmRule)


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
