"""The model bundle the agent would start with: verified and loaded, as at start."""

from __future__ import annotations

from edge_agent.doctor.base import DoctorContext, Finding, Status
from edge_agent.errors import BackendUnavailable
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.model.selection import load_model, release_key_path
from edgetwin_contracts.errors import BundleRejected, KeyInvalid

CHECK = "model"


def check(context: DoctorContext) -> list[Finding]:
    loaded = context.loaded
    config = loaded.config
    try:
        model = load_model(
            config.model,
            ModelsDir(loaded.resolve(config.ota.models_dir)),
            release_key_path(config),
        )
    except BundleRejected as exc:
        return [
            Finding(
                CHECK,
                Status.FAIL,
                f"model bundle rejected: {exc}",
                "point [model] bundle at a signed bundle (edge-agent model verify BUNDLE), "
                "or remove [model] bundle to use the shipped model",
            )
        ]
    except KeyInvalid as exc:
        return [
            Finding(
                CHECK,
                Status.FAIL,
                f"release key unusable: {exc}",
                "set [model] public_key to the release key's PEM file",
            )
        ]
    except BackendUnavailable as exc:
        return [
            Finding(
                CHECK,
                Status.FAIL,
                f"no inference backend: {exc}",
                "/opt/edge-agent/bin/pip install ai-edge-litert (or edgetwin[tflite])",
            )
        ]
    m = model.manifest
    return [
        Finding(
            CHECK,
            Status.OK,
            f"{m.model.name} {m.model.version} verifies and loads on {model.backend}",
        )
    ]
