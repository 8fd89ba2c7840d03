"""The device's half of the twin: the reported state it builds (and versions) and the
desired state it applies, refuses and remembers across restarts (docs/sync.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.store.meta import DESIRED_KEY, REPORTED_HASH_KEY, REPORTED_VERSION_KEY
from edge_agent.store.sqlite import Store
from edgetwin_contracts.batch import (
    AlarmRecord,
    DesiredState,
    ModelRelease,
    ModelReport,
    ModelUpdateReport,
    ModelUpdateState,
    RefusedChange,
    ReportedState,
)

log = logging.getLogger(__name__)

OTA_REFUSAL = "model updates (OTA) are disabled on this device ([ota] enabled, [sync])"
"""Why a desired model_version other than the running one is refused without OTA."""
NO_RELEASE_REFUSAL = "desired model_version names no release (desired.model) to fetch"
NO_TWIN_REFUSAL = "this device runs no cross-channel twin ([twin] section) to update"
NO_TWIN_RELEASE_REFUSAL = "desired twin_version names no release (desired.twin) to fetch"


class ModelUpdater(Protocol):
    """The OTA manager as the twin uses it (edge_agent.model.ota.manager.OtaManager)."""

    @property
    def running_version(self) -> str: ...

    def request(self, release: ModelRelease) -> str | None: ...

    def report(self) -> ModelUpdateReport: ...


class TwinUpdater(Protocol):
    """The twin's OTA manager as the device shadow uses it
    (edge_agent.twin.ota.manager.TwinOtaManager)."""

    @property
    def running_version(self) -> str | None: ...

    def in_service(self) -> ModelReport | None: ...

    def request(self, release: ModelRelease) -> str | None: ...

    def report(self) -> ModelUpdateReport: ...


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What the agent says about itself (everything of ReportedState the sync does not
    add: the version and the desired-state outcome)."""

    agent_version: str
    model: ModelReport
    config_hash: str
    """sha256 of the config file's bytes."""
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_alarms: list[AlarmRecord] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of applying one desired state."""

    version: int
    applied: list[str]
    """Keys in effect: "alarm_overrides.<rule>", "sync_interval_s", "model_version",
    "twin_version"."""
    refused: list[RefusedChange]
    sync_interval_s: float | None
    """The interval the cloud set (None: the configured one)."""


class Twin:
    """Builds the reported state and applies the desired one.

    store: persists the last desired state and the reported version/hash (meta tables).
    engine: the alarm engine whose rules the overrides change.
    model_version: the running model's version (a desired model_version equal to it is
        applied; any other is refused unless ``ota`` is given).
    describe: the agent's current DeviceReport; called on the event loop.
    ota: installs a desired release (docs/ota.md); its progress is reported as
        model_update, its refusals as a refused "model_version".
    twins: installs a desired twin release (docs/ota.md, "The twin's releases"); the
        twin in service is reported as twin, the progress as twin_update, refusals as a
        refused "twin_version". None: no twin here, any twin_version is refused.
    Not thread-safe: use from the agent's event loop.
    """

    def __init__(
        self,
        store: Store,
        engine: AlarmEngine,
        model_version: str,
        describe: Callable[[], DeviceReport],
        ota: ModelUpdater | None = None,
        twins: TwinUpdater | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._model_version = model_version
        self._describe = describe
        self._ota = ota
        self._twins = twins
        self._twin_refusal: str | None = None
        self.desired: DesiredState | None = None
        self.outcome = Applied(0, [], [], None)
        self._model_refusal: str | None = None
        self._reported_version = store.meta_int(REPORTED_VERSION_KEY)
        self._reported_hash = store.meta_text(REPORTED_HASH_KEY)
        self.material_hash: str | None = None
        """Hash of the last state built without its live values (LIVE_SOURCE_KEYS,
        LIVE_CHANNEL_KEYS): a change here is sent at once, live values only every
        [sync] reported_live_s."""

    @property
    def reported_version(self) -> int:
        """The version of the last reported state built (persisted once staged)."""
        return self._reported_version

    @property
    def reported_hash(self) -> str | None:
        return self._reported_hash

    # -- desired -------------------------------------------------------------------

    def restore(self) -> Applied | None:
        """Re-apply the desired state persisted by the last run (a device restarting
        offline keeps the cloud's overrides). Returns its outcome, or None if there is
        none (or it no longer parses: logged, ignored)."""
        text = self._store.meta_text(DESIRED_KEY)
        if text is None:
            return None
        try:
            desired = DesiredState.model_validate_json(text)
        except ValidationError as exc:
            log.error("persisted desired state unreadable, ignored: %s", exc)
            return None
        outcome = self._apply(desired)
        log.info(
            "restored desired state",
            extra={"desired_version": desired.version, "refused": len(outcome.refused)},
        )
        return outcome

    def is_new(self, desired: DesiredState) -> bool:
        """Whether ``desired`` differs from the desired state in effect."""
        return self.desired is None or desired != self.desired

    def apply(self, desired: DesiredState) -> Applied:
        """Apply a desired state from the cloud and return the outcome (the caller
        persists it first, under DESIRED_KEY, so a restart re-applies it)."""
        outcome = self._apply(desired)
        log.info(
            "desired state applied",
            extra={
                "desired_version": desired.version,
                "applied": outcome.applied,
                "refused": [r.model_dump() for r in outcome.refused],
            },
        )
        return outcome

    def _apply(self, desired: DesiredState) -> Applied:
        applied: list[str] = []
        refused: list[RefusedChange] = []
        overrides = {
            name: o.model_dump(exclude_none=True) for name, o in desired.alarm_overrides.items()
        }
        reasons = self._engine.override_rules(overrides)
        for name in sorted(desired.alarm_overrides):
            key = f"alarm_overrides.{name}"
            if name in reasons:
                refused.append(RefusedChange(key=key, reason=reasons[name]))
            else:
                applied.append(key)
        if desired.sync_interval_s is not None:
            applied.append("sync_interval_s")
        self._model_refusal = None
        if desired.model_version is not None and desired.model_version != self.running_version:
            if self._ota is None:
                self._model_refusal = OTA_REFUSAL
            elif desired.model is None or desired.model.version != desired.model_version:
                self._model_refusal = NO_RELEASE_REFUSAL
            else:
                self._model_refusal = self._ota.request(desired.model)
        self._twin_refusal = self._request_twin(desired)
        self.desired = desired
        self.outcome = self._with_model(
            Applied(desired.version, applied, refused, desired.sync_interval_s)
        )
        return self.outcome

    def _request_twin(self, desired: DesiredState) -> str | None:
        wanted = desired.twin_version
        if wanted is None:
            return None
        if self._twins is None:
            return NO_TWIN_REFUSAL
        if wanted == self._twins.running_version:
            return None
        if desired.twin is None or desired.twin.version != wanted:
            return NO_TWIN_RELEASE_REFUSAL
        return self._twins.request(desired.twin)

    @property
    def running_version(self) -> str:
        return self._ota.running_version if self._ota is not None else self._model_version

    def _with_model(self, outcome: Applied) -> Applied:
        """The outcome with "model_version" and "twin_version" as they stand now:
        applied once that model (twin) runs, refused with the reason while the release
        is refused, neither while it is being installed."""
        desired = self.desired
        outcome = _with_release(
            outcome,
            "model_version",
            desired.model_version if desired is not None else None,
            self.running_version,
            self._model_refusal,
            self._ota.report() if self._ota is not None else None,
        )
        return _with_release(
            outcome,
            "twin_version",
            desired.twin_version if desired is not None else None,
            self._twins.running_version if self._twins is not None else None,
            self._twin_refusal,
            self._twins.report() if self._twins is not None else None,
        )

    # -- reported ------------------------------------------------------------------

    def reported(self, extra_counters: dict[str, int] | None = None) -> ReportedState:
        """The current reported state. Its version goes up by one whenever the content
        differs from the last one built (the hash of everything but the version); call
        ``self.reported_hash`` for the hash to persist with it."""
        report = self._describe()
        self.outcome = self._with_model(self.outcome)
        counters = dict(report.counters)
        counters.update(extra_counters or {})
        state = ReportedState(
            version=0,
            agent_version=report.agent_version,
            model=report.model,
            config_hash=report.config_hash,
            sources=report.sources,
            channels=report.channels,
            open_alarms=report.open_alarms,
            counters=counters,
            desired_version_applied=self.outcome.version,
            applied=list(self.outcome.applied),
            refused=list(self.outcome.refused),
            model_update=self._ota.report() if self._ota is not None else None,
            twin=self._twins.in_service() if self._twins is not None else None,
            twin_update=self._twins.report() if self._twins is not None else None,
        )
        digest = hashlib.sha256(state.model_dump_json().encode()).hexdigest()
        self.material_hash = material_hash(state)
        if digest != self._reported_hash:
            self._reported_version += 1
            self._reported_hash = digest
        return state.model_copy(update={"version": self._reported_version})


def _with_release(
    outcome: Applied,
    key: str,
    wanted: str | None,
    running: str | None,
    refusal: str | None,
    report: ModelUpdateReport | None,
) -> Applied:
    """``outcome`` with ``key`` applied (``wanted`` runs), refused (``refusal``, or the
    update report's rejection or rollback of ``wanted``) or neither (installing)."""
    applied = [k for k in outcome.applied if k != key]
    refused = [r for r in outcome.refused if r.key != key]
    if wanted is not None:
        if wanted == running:
            applied.append(key)
        else:
            reason = refusal
            if (
                reason is None
                and report is not None
                and report.version == wanted
                and report.state in (ModelUpdateState.REJECTED, ModelUpdateState.ROLLED_BACK)
            ):
                reason = f"{report.state.value}: {report.reason}"
            if reason is not None:
                refused.append(RefusedChange(key=key, reason=reason))
    return Applied(outcome.version, applied, refused, outcome.sync_interval_s)


class ReportedLedger:
    """Which reported state the cloud has (the sync worker's side): its hashes (whole
    and material, see ``material_hash``), when it was acknowledged, and the one staged."""

    def __init__(self) -> None:
        self.acked: tuple[str | None, str | None] = (None, None)
        self.acked_at = -math.inf
        self.staged: tuple[str | None, str | None] = (None, None)

    def due(self, digest: str | None, material: str | None, now: float, live_s: float) -> bool:
        """The state built must go: its material part changed, or only live values did
        and the last one acknowledged is ``live_s`` old."""
        whole, acked_material = self.acked
        live_due = now - self.acked_at >= live_s
        return material != acked_material or (live_due and digest != whole)

    def stage(self, digest: str | None, material: str | None, carried: bool) -> str | None:
        """Remember what the staged batch carries; returns the hash to persist with it."""
        self.staged = (digest, material) if carried else (None, None)
        return self.staged[0]

    def acknowledged(self, now: float) -> None:
        """The staged state is the cloud's (the twin built no newer one meanwhile)."""
        self.acked, self.acked_at = self.staged, now


LIVE_SOURCE_KEYS = frozenset({"last_reading_ts", "counters"})
"""Per-source values that move with every reading."""
LIVE_CHANNEL_KEYS = frozenset({"last_ts", "last_value", "rejected", "feed_period_s", "horizon_s"})
"""Per-channel values that move with every reading (feed_period_s is a running mean of
the intervals seen, and a model without a period forecasts at horizons in its steps)."""


def material_hash(state: ReportedState) -> str:
    """sha256 of the state without its version and its live values: what an operator
    or the rollout acts on (model, config, health, alarms, warm-up, the desired
    outcome). Live values alone changing is not worth a batch every sync interval: a
    4-channel device at 10 Hz staged one each interval for them (about 250 MB a day of
    writes), while the summaries already carry the values to the cloud."""
    data = state.model_dump(mode="json", exclude={"version"})
    for src in data["sources"].values():
        for key in LIVE_SOURCE_KEYS:
            src.pop(key, None)
    for ch in data["channels"].values():
        for key in LIVE_CHANNEL_KEYS:
            ch.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def config_hash(path: Any) -> str:
    """sha256 of the config file's bytes ("unknown" if it cannot be read now)."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return "unknown"
