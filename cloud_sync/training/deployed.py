"""The model a device runs now, as the retrain compares a candidate against it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Engine, select

from cloud_sync.db.models import Device
from cloud_sync.training.task import DeployedModel
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE


def resolve_deployed(engine: Engine, device: str, reports_dir: Path) -> DeployedModel:
    """The device's current model, from its reported state.

    The generic default (or no report yet): the shipped bundle. A device release: the
    bundle in ``<reports_dir>/<device>/<version>/bundle`` whose model sha256 is the one
    the device reports. Otherwise the shipped default, with a note saying so.
    """
    from edge_agent.model.shipped import DEFAULT_BUNDLE
    from edgetwin_contracts.batch import ReportedState
    from model_export.default_model import DEFAULT_MODEL_NAME

    with engine.connect() as conn:
        raw = conn.scalar(select(Device.reported).where(Device.name == device))
    reported = None if raw is None else ReportedState.model_validate(raw).model
    note = ""
    if reported is None:
        note = "The device has not reported its model yet: compared with the shipped default."
    elif reported.name != DEFAULT_MODEL_NAME:
        folder = reports_dir / device / reported.version / "bundle"
        if (folder / MODEL_FILE).is_file():
            model_bytes = (folder / MODEL_FILE).read_bytes()
            if hashlib.sha256(model_bytes).hexdigest() == reported.sha256:
                return _deployed_from(folder, model_bytes, f"release bundle {folder}", "")
        note = (
            f"The device reports {reported.name} {reported.version}, whose bundle was not "
            "found here: compared with the shipped default instead."
        )
    model_bytes = (DEFAULT_BUNDLE / MODEL_FILE).read_bytes()
    if (
        reported is not None
        and not note
        and hashlib.sha256(model_bytes).hexdigest() != reported.sha256
    ):
        note = "The device's reported sha256 differs from the shipped default bundle's."
    return _deployed_from(DEFAULT_BUNDLE, model_bytes, f"shipped default {DEFAULT_BUNDLE}", note)


def _deployed_from(folder: Path, model_bytes: bytes, source: str, note: str) -> DeployedModel:
    from edgetwin_contracts.manifest import parse_manifest

    m = parse_manifest((folder / MANIFEST_FILE).read_bytes(), str(folder))
    return DeployedModel(
        name=m.model.name,
        version=m.model.version,
        model_bytes=model_bytes,
        window_length=m.input.window_length,
        horizons=tuple(m.output.horizons),
        normalization=m.input.normalization,
        source=source,
        note=note,
    )
