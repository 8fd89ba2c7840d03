"""A human-readable account of a bundle: its manifest and the model's tensors.

Reading only: nothing is verified here beyond the manifest schema and the model hash
(the signature check needs the trusted key: ``model-export verify``). Runs on the
device install; no TensorFlow.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BackendUnavailable
from edge_agent.model.inference.backend import resolve
from edgetwin_common.logs import native_stderr_to_log
from edgetwin_contracts.bundle import MAX_MANIFEST_BYTES, MAX_MODEL_BYTES, read_bundle_file
from edgetwin_contracts.errors import BundleIncomplete
from edgetwin_contracts.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    Manifest,
    QuantParams,
    parse_manifest,
)

log = logging.getLogger(__name__)


def describe_bundle(path: Path, *, as_json: bool = False) -> str:
    """The bundle's manifest and tensor details as text (``as_json``: the manifest bytes).

    Raises:
        BundleIncomplete: the folder or its manifest.json is missing.
        BundleFileNotRegular / BundleTooLarge: a file that is a symlink, FIFO or folder, or
            larger than its cap (read without blocking, up to the cap).
        ManifestInvalid / SchemaVersionUnsupported: the manifest does not parse.
    """
    bundle = str(path)
    if not path.is_dir():
        raise BundleIncomplete(bundle, "not a directory")
    raw = read_bundle_file(path / MANIFEST_FILE, MAX_MANIFEST_BYTES, bundle)
    if as_json:
        return raw.decode("utf-8", errors="replace")
    manifest = parse_manifest(raw, bundle)
    try:
        model_bytes: bytes | None = read_bundle_file(path / MODEL_FILE, MAX_MODEL_BYTES, bundle)
    except BundleIncomplete:
        model_bytes = None
    lines = [f"bundle      {path}"]
    lines += _manifest_lines(manifest, model_bytes, (path / SIGNATURE_FILE).is_file())
    lines.append("tensors")
    lines += _tensor_lines(model_bytes)
    return "\n".join(lines) + "\n"


def _quant(q: QuantParams) -> str:
    return f"scale {q.scale:.6g} zero_point {q.zero_point}"


def _manifest_lines(m: Manifest, model_bytes: bytes | None, has_signature: bool) -> list[str]:
    if model_bytes is None:
        file_state = "MISSING"
    else:
        digest = hashlib.sha256(model_bytes).hexdigest()
        same = digest == m.file.sha256 and len(model_bytes) == m.file.size_bytes
        file_state = "matches the manifest" if same else f"DOES NOT MATCH (sha256 {digest})"
    norm = m.input.normalization
    period = f"{m.input.sample_period_s:g} s" if m.input.sample_period_s else "any"
    channels = ", ".join(m.input.channels) if m.input.channels else "any (generic)"
    t, v = m.training, m.metrics
    lines = [
        f"model       {m.model.name} {m.model.version}, created {m.model.created_at.isoformat()}",
    ]
    if m.model.description:
        lines.append(f"            {m.model.description}")
    lines += [
        f"file        {m.file.path}, {m.file.size_bytes} bytes, sha256 {m.file.sha256}",
        f"            on disk: {file_state}",
        f"signature   {SIGNATURE_FILE} {'present' if has_signature else 'MISSING'}, "
        f"key id {m.signing.key_id} (checked only by 'model-export verify')",
        f"input       {m.input.dtype} {m.input.shape}: window of {m.input.window_length} "
        f"readings; channels {channels}; sample period {period}",
        f"            normalization {norm.kind} (min_std_abs {norm.min_std_abs:g}, "
        f"min_std_rel {norm.min_std_rel:g}); quantization {_quant(m.quantization.input)}",
        f"output      {m.output.dtype} {m.output.shape}: horizons {m.output.horizons} samples "
        f"ahead, {m.output.units} units; quantization {_quant(m.quantization.output)}",
        f"training    {t.dataset}: {t.series} series, {t.windows} windows, {t.epochs} epochs",
    ]
    if t.dataset_sha256:
        lines.append(f"            dataset sha256 {t.dataset_sha256}")
    notes = sorted(t.notes.items(), key=lambda item: _natural(item[0]))
    lines += [f"            {key}: {value}" for key, value in notes]
    lines += [
        f"metrics     {v.windows} held-out windows ({v.holdout}), errors in {v.units} units",
        f"            float32 MAE {v.float32.mae:.5f} RMSE {v.float32.rmse:.5f}",
        f"            int8    MAE {v.int8.mae:.5f} RMSE {v.int8.rmse:.5f} "
        f"({v.int8_mae_increase:+.2%} MAE vs float32)",
        f"golden      {len(m.golden.vectors)} vectors, "
        f"tolerance {m.golden.tolerance_lsb} int8 step",
    ]
    return lines


def _natural(key: str) -> tuple[tuple[int, str | int], ...]:
    """Sort key reading digit runs as numbers: heldout_mae_h2 before heldout_mae_h16."""
    return tuple(
        (1, int(part)) if part.isdigit() else (0, part) for part in re.split(r"(\d+)", key)
    )


def _tensor_lines(model_bytes: bytes | None) -> list[str]:
    if model_bytes is None:
        return ["            (no model file)"]
    try:
        backend, factory = resolve("auto")
    except BackendUnavailable as exc:
        return [f"            unavailable: {exc}"]
    try:
        with native_stderr_to_log(log):
            interpreter = factory(model_content=model_bytes, num_threads=1)
            interpreter.allocate_tensors()
    except Exception as exc:  # the bindings raise ValueError/RuntimeError, by version
        return [f"            the interpreter refused the model: {type(exc).__name__}: {exc}"]
    lines = [f"            read with {backend.value}"]
    for role, details in (
        ("input", interpreter.get_input_details()),
        ("output", interpreter.get_output_details()),
    ):
        lines += [f"  {role} {i}: {_tensor(d)}" for i, d in enumerate(details)]
    return lines


def _tensor(d: dict[str, Any]) -> str:
    shape = np.asarray(d["shape"]).tolist()
    dtype = np.dtype(d["dtype"]).name
    qp = d.get("quantization_parameters") or {}
    scales = np.asarray(qp.get("scales", [])).tolist()
    zero_points = np.asarray(qp.get("zero_points", [])).tolist()
    quant = (
        f"scale {scales[0]:.6g} zero_point {zero_points[0]}"
        if len(scales) == 1 and len(zero_points) == 1
        else f"scales {scales} zero_points {zero_points}"
    )
    return f"{d['name']!r} shape {shape} {dtype}, {quant}"
