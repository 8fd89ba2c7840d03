"""The twin a device runs now, as the twin retrain compares a candidate against it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Engine, select

from cloud_sync.db.models import Device
from cloud_sync.training.twin_task import RunningTwin
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE, TwinSpec

TWINS_DIR = "twins"
"""A device's twin candidates: ``<reports_dir>/<device>/twins/<version>/`` (report,
decision, ``bundle/``), beside its forecaster candidates."""


def shipped_twin() -> tuple[TwinSpec, float]:
    """The shipped default twin's spec and period (verified with its own key)."""
    from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
    from edgetwin_contracts.bundle import read_verified

    manifest = read_verified(DEFAULT_TWIN_BUNDLE, default_twin_public_key()).manifest
    assert manifest.twin is not None and manifest.input.sample_period_s is not None
    return manifest.twin, manifest.input.sample_period_s


def resolve_running_twin(engine: Engine, device: str, reports_dir: Path) -> RunningTwin:
    """The device's current twin, from its reported state (``reported.twin``).

    No twin reported, or the shipped default: the shipped default bundle. A device twin
    release: ``<reports_dir>/<device>/twins/<version>/bundle`` whose model sha256 is the
    one the device reports. Otherwise the shipped default, with a note saying so.
    """
    from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key
    from edgetwin_contracts.batch import ReportedState
    from edgetwin_contracts.bundle import read_verified
    from model_export.twin_default import DEFAULT_TWIN_NAME

    with engine.connect() as conn:
        raw = conn.scalar(select(Device.reported).where(Device.name == device))
    reported = None if raw is None else ReportedState.model_validate(raw).twin
    note = ""
    if reported is None:
        note = "The device has not reported a twin: compared with the shipped default twin."
    elif reported.name != DEFAULT_TWIN_NAME:
        folder = reports_dir / device / TWINS_DIR / reported.version / "bundle"
        if (folder / MODEL_FILE).is_file():
            model_bytes = (folder / MODEL_FILE).read_bytes()
            if hashlib.sha256(model_bytes).hexdigest() == reported.sha256:
                return _from(folder, model_bytes, f"release bundle {folder}", "")
        note = (
            f"The device reports the twin {reported.name} {reported.version}, whose bundle "
            "was not found here: compared with the shipped default twin instead."
        )
    verified = read_verified(DEFAULT_TWIN_BUNDLE, default_twin_public_key())
    if (
        reported is not None
        and not note
        and hashlib.sha256(verified.model_bytes).hexdigest() != reported.sha256
    ):
        note = "The device's reported twin sha256 differs from the shipped default's."
    return _from(
        DEFAULT_TWIN_BUNDLE, verified.model_bytes, f"shipped default {DEFAULT_TWIN_BUNDLE}", note
    )


def _from(folder: Path, model_bytes: bytes, source: str, note: str) -> RunningTwin:
    from edgetwin_contracts.manifest import parse_manifest

    m = parse_manifest((folder / MANIFEST_FILE).read_bytes(), str(folder))
    assert m.twin is not None  # both places hold twin bundles only
    return RunningTwin(
        name=m.model.name,
        version=m.model.version,
        model_bytes=model_bytes,
        spec=m.twin,
        source=source,
        note=note,
    )
