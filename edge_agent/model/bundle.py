"""Load a model bundle on the device, all or nothing.

Order matters: the signature, schema, size and hash are checked on bytes in memory
before the interpreter sees the model (a crafted .tflite can crash an interpreter);
then the tensors are checked against the manifest; then the golden vectors must
reproduce. Only then is a ``LoadedModel`` returned: no half-loaded state exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.model.inference.backend import Backend
from edge_agent.model.inference.forecaster import Forecaster
from edge_agent.model.inference.quantization import QuantParams
from edgetwin_contracts.bundle import MAX_MODEL_BYTES, read_verified
from edgetwin_contracts.errors import GoldenVectorMismatch, TensorSpecMismatch
from edgetwin_contracts.manifest import Manifest
from edgetwin_contracts.manifest import QuantParams as ManifestQuant


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A verified bundle with its ready forecaster."""

    path: Path
    manifest: Manifest
    forecaster: Forecaster

    @property
    def backend(self) -> Backend:
        return self.forecaster.backend


def load_bundle(
    path: Path,
    public_key: Ed25519PublicKey,
    *,
    backend: str | Backend = "auto",
    num_threads: int = 1,
    max_model_bytes: int = MAX_MODEL_BYTES,
) -> LoadedModel:
    """Verify and load the bundle in folder ``path``.

    Raises a ``BundleRejected`` subclass naming the problem (see
    ``edgetwin_contracts.errors``), or ``BackendUnavailable``.
    """
    verified = read_verified(path, public_key, max_model_bytes)
    manifest = verified.manifest
    source = str(path)
    if manifest.twin is not None:
        raise TensorSpecMismatch(
            source, "this is a twin bundle (cross-channel), not a per-channel forecaster"
        )
    forecaster = Forecaster(
        verified.model_bytes,
        window_length=manifest.input.window_length,
        horizons=manifest.output.horizons,
        normalization=manifest.input.normalization,
        backend=backend,
        num_threads=num_threads,
        source=source,
    )
    _check_quantization(source, "input", manifest.quantization.input, forecaster.input_quant)
    _check_quantization(source, "output", manifest.quantization.output, forecaster.output_quant)
    check_golden(forecaster, manifest, source)
    return LoadedModel(path, manifest, forecaster)


def _check_quantization(
    source: str, role: str, declared: ManifestQuant, actual: QuantParams
) -> None:
    if declared.zero_point != actual.zero_point or not math.isclose(
        declared.scale, actual.scale, rel_tol=1e-6
    ):
        raise TensorSpecMismatch(
            source,
            f"{role} quantization is scale={actual.scale:g} zero_point={actual.zero_point} "
            f"in the model, manifest says scale={declared.scale:g} "
            f"zero_point={declared.zero_point}",
        )


def check_golden(forecaster: Forecaster, manifest: Manifest, source: str) -> None:
    """Run every golden vector; raise GoldenVectorMismatch on the first that differs
    by more than ``golden.tolerance_lsb`` int8 steps in any output."""
    tolerance = manifest.golden.tolerance_lsb
    for i, vector in enumerate(manifest.golden.vectors):
        window = np.asarray(vector.input, dtype=np.float64)
        forecaster.forecast(window)
        got = forecaster.last_output_q.astype(np.int16)
        want = np.asarray(vector.output_q, dtype=np.int16)
        worst = int(np.max(np.abs(got - want)))
        if worst > tolerance:
            raise GoldenVectorMismatch(
                source,
                f"vector {i}: int8 outputs {got.tolist()} differ from recorded "
                f"{want.tolist()} by up to {worst} steps (tolerance {tolerance})",
            )
