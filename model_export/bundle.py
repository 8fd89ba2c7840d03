"""Writing a signed model bundle: model.tflite, manifest.json, manifest.sig.

The folder appears all at once: files are written and fsynced in a temporary sibling
folder, which is then renamed into place, so a crash never leaves a half bundle where
a device (or a sync job) could pick it up. Golden vectors are recorded with the
device's own ``Forecaster``, and the finished bundle is loaded back with the device's
``load_bundle`` before this module reports success.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.model.bundle import LoadedModel, load_bundle
from edge_agent.model.inference.forecaster import Forecaster
from edgetwin_contracts.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    Golden,
    GoldenVector,
    InputSpec,
    Manifest,
    ModelFile,
    ModelInfo,
    Normalization,
    OutputSpec,
    Quantization,
    QuantParams,
    Signing,
    TrainingSummary,
    ValidationMetrics,
)
from edgetwin_contracts.normalization import window_stats
from edgetwin_contracts.signing import key_id, sign
from model_export.dataset import WindowSet, WindowSpec
from model_export.errors import BundleExists

FloatArray = npt.NDArray[np.float64]
GOLDEN_COUNT = 5


@dataclass(frozen=True, slots=True)
class Release:
    """Who the bundle is: manifest ``model`` fields and what it serves."""

    name: str
    version: str
    description: str = ""
    channels: list[str] | None = None
    sample_period_s: float | None = None


def golden_windows(held_out: WindowSet, norm: Normalization, seed: int) -> list[FloatArray]:
    """``GOLDEN_COUNT`` raw windows: three held-out ones (the calmest, the most
    variable and one at random), a flat one and one with a spike.

    The flat window exercises the std floor; the spike pushes the input toward the
    edge of its quantized range. Both are made from held-out readings so they sit at
    a realistic scale.
    """
    rng = np.random.default_rng(seed)
    inputs = held_out.inputs
    mean, std = window_stats(inputs, norm)
    relative = std / np.maximum(np.abs(mean), 1e-12)
    calm = inputs[int(np.argmin(relative))]
    busy = inputs[int(np.argmax(relative))]
    i = int(rng.integers(len(inputs)))
    pick = inputs[i]
    flat = np.full(inputs.shape[1], float(pick[-1]))
    spike = pick.copy()
    spike[-3] += 6.0 * float(std[i])
    return [w.astype(np.float64).copy() for w in (calm, busy, pick, flat, spike)]


def record_golden(forecaster: Forecaster, windows: list[FloatArray]) -> Golden:
    """Run each window through the device forecaster and record its int8 and float output."""
    vectors = []
    for window in windows:
        out = forecaster.forecast(window)
        vectors.append(
            GoldenVector(
                input=window.tolist(),
                output_q=forecaster.last_output_q.astype(int).tolist(),
                output=out.tolist(),
            )
        )
    return Golden(tolerance_lsb=1, vectors=vectors)


def build_manifest(
    *,
    model_bytes: bytes,
    release: Release,
    spec: WindowSpec,
    norm: Normalization,
    training: TrainingSummary,
    metrics: ValidationMetrics,
    golden_inputs: list[FloatArray],
    private_key: Ed25519PrivateKey,
    created_at: datetime | None = None,
) -> Manifest:
    """The manifest for ``model_bytes``; quantization parameters and golden outputs are
    read from the model itself through the device forecaster.

    Raises the device's ``BundleRejected`` subclasses when the model's tensors are not
    int8 [1, W] -> [1, H], and pydantic's ValidationError for out-of-range fields.
    """
    forecaster = Forecaster(
        model_bytes, window_length=spec.window_length, horizons=spec.horizons, normalization=norm
    )
    golden = record_golden(forecaster, golden_inputs)
    iq, oq = forecaster.input_quant, forecaster.output_quant
    return Manifest(
        schema_version=1,
        model=ModelInfo(
            name=release.name,
            version=release.version,
            created_at=created_at or datetime.now(UTC).replace(microsecond=0),
            description=release.description,
        ),
        file=ModelFile(sha256=hashlib.sha256(model_bytes).hexdigest(), size_bytes=len(model_bytes)),
        input=InputSpec(
            channels=release.channels,
            window_length=spec.window_length,
            sample_period_s=release.sample_period_s,
            normalization=norm,
            shape=[1, spec.window_length],
        ),
        output=OutputSpec(horizons=list(spec.horizons), shape=[1, len(spec.horizons)]),
        quantization=Quantization(
            input=QuantParams(scale=iq.scale, zero_point=iq.zero_point),
            output=QuantParams(scale=oq.scale, zero_point=oq.zero_point),
        ),
        training=training,
        metrics=metrics,
        golden=golden,
        signing=Signing(key_id=key_id(private_key.public_key())),
    )


def write_bundle(
    dest: Path,
    model_bytes: bytes,
    manifest: Manifest,
    private_key: Ed25519PrivateKey,
    *,
    force: bool = False,
) -> LoadedModel:
    """Sign the manifest and write the bundle folder ``dest`` atomically, then load it
    back with the device loader to prove it verifies.

    An existing empty folder is replaced; a non-empty one only with ``force``.

    Raises:
        BundleExists: ``dest`` exists, is not empty, and ``force`` is False.
        BundleRejected: the written bundle does not load (a bug, never expected).
    """
    write_signed(dest, model_bytes, manifest, private_key, force=force)
    return load_bundle(dest, private_key.public_key())


def write_signed(
    dest: Path,
    model_bytes: bytes,
    manifest: Manifest,
    private_key: Ed25519PrivateKey,
    *,
    force: bool = False,
) -> None:
    """Sign the manifest and write the bundle folder ``dest`` atomically (the caller
    loads it back with the loader of its kind). Raises BundleExists as ``write_bundle``."""
    manifest_bytes = manifest.to_json_bytes()
    signature = sign(private_key, manifest_bytes)
    check_destination(dest, force=force)
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".new", dir=parent))
    try:
        for name, data in (
            (MODEL_FILE, model_bytes),
            (MANIFEST_FILE, manifest_bytes),
            (SIGNATURE_FILE, signature),
        ):
            _write_synced(staging / name, data)
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; bundles are not secret
        _replace_dir(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(parent)


def check_destination(dest: Path, *, force: bool) -> None:
    """Raise BundleExists unless ``dest`` may be (re)written; called early too, so a slow
    export fails before it starts rather than at the end."""
    if dest.exists() and not dest.is_dir():
        raise BundleExists(f"{dest} exists and is not a folder")
    if dest.exists() and any(dest.iterdir()) and not force:
        raise BundleExists(f"{dest} exists and is not empty; pass --force to replace it")


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o644)


def _replace_dir(staging: Path, dest: Path) -> None:
    if not dest.exists():
        staging.rename(dest)
        return
    # A folder cannot be atomically swapped for another on POSIX; moving the old one
    # aside first keeps the window in which dest is missing to two renames.
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    old.rmdir()
    dest.rename(old)
    try:
        staging.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
