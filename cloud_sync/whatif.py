"""What-if in the cloud for any device: its twin rolled forward from its last synced
summaries (the same int8 model and the same state rule as on the device).

The twin, first found of:

1. the twin the device reports in service (``reported.twin``) when it is a twin release
   of this cloud: its bundle from the bundle store (the release with that name and
   version, whose model file has the sha256 the device reports), verified with the
   release public key — what the device itself answers with;
2. the device's fine-tuned twin (``cloud_sync.training.twin``, verified with the
   release public key), not in service yet;
3. the shipped default twin (also when the device reports running it).

``twin_source`` says which, starting with "released twin", "device twin" or "shipped
default twin".
The cloud has no copy of the device's alarm rules: the caller passes the limits to
check (``limits``), e.g. the fleet page sends the alarm levels the device reports.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select

from cloud_sync.db.models import Device, Release
from cloud_sync.errors import DeviceNotFound, ScenarioRefused, TwinStateMissing
from cloud_sync.releases.model import ReleaseKind
from cloud_sync.releases.store import BundleStore
from cloud_sync.training.twin import device_twin_dir
from cloud_sync.twin import list_summaries
from edge_agent.twin.errors import ScenarioInvalid, TwinError, TwinStateIncomplete
from edge_agent.twin.model import LoadedTwin, load_twin
from edge_agent.twin.scenario import Scenario
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
from edge_agent.twin.state import IntervalMean, history_from_summaries
from edge_agent.twin.whatif import Limit, WhatIfAnswer, what_if
from edgetwin_contracts.batch import ModelReport, ReportedState
from edgetwin_contracts.bundle import read_verified
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
    """Loaded twins, verified once per bundle (loading checks golden vectors).

    Args:
        reports_dir: where device twins are (``<reports_dir>/<device>/twin``).
        public_key: the release key released and device twins must be signed with;
            None: neither is used (only the shipped default twin).
        store: the release bundle store, where a released twin's archive is; None:
            released twins are not used.
    """

    def __init__(
        self, reports_dir: Path, public_key: Path | None, store: BundleStore | None = None
    ) -> None:
        self._reports_dir = reports_dir
        self._public_key = public_key
        self._store = store
        self._loaded: dict[tuple[Path, bytes], LoadedTwin] = {}
        self._released: dict[str, LoadedTwin] = {}
        self._default_sha: str | None = None

    def for_device(self, device: str, engine: Engine | None = None) -> tuple[LoadedTwin, str]:
        """The device's twin and where it comes from (``engine``: read what the device
        reports in service; without it the reported twin is not looked at).

        Raises DeviceNotFound, TwinStateMissing (a twin that does not load)."""
        in_service = None if engine is None else _reported_twin(engine, device)
        if engine is not None and in_service is not None:
            found = self._released_twin(engine, in_service)
            if found is not None:
                return found
            if in_service.sha256 == self._shipped_sha():
                twin = self._load(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
                m = twin.manifest.model
                return twin, f"shipped default twin {m.name} {m.version} (in service on the device)"
        folder = device_twin_dir(self._reports_dir, device)
        if self._public_key is not None and (folder / MANIFEST_FILE).is_file():
            twin = self._load(folder, load_public_key(self._public_key))
            m = twin.manifest.model
            return twin, f"device twin {m.name} {m.version} ({folder})"
        twin = self._load(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
        m = twin.manifest.model
        return twin, f"shipped default twin {m.name} {m.version} (no device twin here)"

    def _released_twin(
        self, engine: Engine, in_service: ModelReport
    ) -> tuple[LoadedTwin, str] | None:
        """The twin release the device runs, loaded from the bundle store; None when the
        reported twin is no twin release here (or the model file's hash differs)."""
        if self._store is None or self._public_key is None:
            return None
        with engine.connect() as conn:
            row = conn.execute(
                select(Release.id, Release.bundle_sha256).where(
                    Release.kind == ReleaseKind.TWIN.value,
                    Release.model_name == in_service.name,
                    Release.version == in_service.version,
                )
            ).first()
        if row is None:
            return None
        twin = self._released.get(row.bundle_sha256)
        if twin is None:
            with tempfile.TemporaryDirectory(prefix="twin-release-") as tmp:
                folder = self._store.unpack(row.bundle_sha256, Path(tmp))
                try:
                    twin = load_twin(folder, load_public_key(self._public_key))
                except (BundleRejected, TwinError) as exc:
                    raise TwinStateMissing(
                        f"the released twin {in_service.name} {in_service.version} "
                        f"(release {row.id}) does not load: {exc}"
                    ) from None
            self._released[row.bundle_sha256] = twin
        if in_service.sha256 not in (twin.manifest.file.sha256, row.bundle_sha256):
            return None  # same name and version, another model: not this release
        m = twin.manifest.model
        return twin, f"released twin {m.name} {m.version} (release {row.id}, in service)"

    def _shipped_sha(self) -> str:
        if self._default_sha is None:
            manifest = read_verified(DEFAULT_TWIN_BUNDLE, default_twin_public_key()).manifest
            self._default_sha = manifest.file.sha256
        return self._default_sha

    def _load(self, folder: Path, key: Ed25519PublicKey) -> LoadedTwin:
        stamp = (folder, (folder / MANIFEST_FILE).read_bytes())
        if stamp not in self._loaded:
            try:
                self._loaded[stamp] = load_twin(folder, key)
            except (BundleRejected, TwinError) as exc:
                raise TwinStateMissing(f"the twin {folder} does not load: {exc}") from None
        return self._loaded[stamp]


def _reported_twin(engine: Engine, device: str) -> ModelReport | None:
    """The twin the device reports in service. Raises DeviceNotFound."""
    with engine.connect() as conn:
        found = conn.execute(select(Device.reported).where(Device.name == device)).first()
    if found is None:
        raise DeviceNotFound(f"no device named {device!r}")
    return None if found.reported is None else ReportedState.model_validate(found.reported).twin


def cloud_what_if(
    engine: Engine, device: str, scenario: CloudScenario, cache: TwinCache
) -> CloudWhatIf:
    """Answer ``scenario`` for ``device`` from its synced summaries.

    Raises DeviceNotFound, ScenarioRefused (422), TwinStateMissing (409).
    """
    twin, source = cache.for_device(device, engine)
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
