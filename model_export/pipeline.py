"""The export steps chained: windows -> train -> int8 -> measure -> golden -> signed bundle.

Used by every CLI command that produces a bundle (convert, default-model, demo), so
they cannot differ in how a bundle is checked. ``say`` receives one progress line per
step; TensorFlow is imported only by the steps that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.model.bundle import LoadedModel
from edgetwin_contracts.manifest import Normalization, TrainingSummary
from edgetwin_contracts.signing import generate_private_key, load_private_key, save_keypair
from model_export.bundle import (
    Release,
    build_manifest,
    check_destination,
    golden_windows,
    write_bundle,
)
from model_export.convert import (
    DEFAULT_MAX_INT8_INCREASE,
    DEFAULT_REPRESENTATIVE_WINDOWS,
    Evaluation,
    check_int8_bound,
    convert_to_int8,
    evaluate,
    representative_windows,
)
from model_export.dataset import WindowSet, WindowSpec
from model_export.errors import KeyExists

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A written, re-verified bundle and the measurements that went into it."""

    bundle: LoadedModel
    evaluation: Evaluation
    model_bytes: int


def export_bundle(
    *,
    model: Any,
    train_windows: WindowSet,
    held_out: WindowSet,
    spec: WindowSpec,
    norm: Normalization,
    release: Release,
    training: TrainingSummary,
    private_key: Ed25519PrivateKey,
    dest: Path,
    force: bool,
    holdout: str,
    max_int8_increase: float = DEFAULT_MAX_INT8_INCREASE,
    representative_count: int = DEFAULT_REPRESENTATIVE_WINDOWS,
    max_eval_windows: int = 20_000,
    seed: int = 7,
    say: Say = print,
    progress: bool = True,
) -> ExportResult:
    """Convert ``model`` to int8, measure it, refuse it or write the signed bundle.

    Raises:
        ConversionRefused: int8 MAE exceeds float32 MAE by more than ``max_int8_increase``
            (nothing is written).
        BundleExists: ``dest`` is not empty and ``force`` is False.
        ExportError: conversion failed or there are no held-out windows.
    """
    check_destination(dest, force=force)
    z_train, _, _ = train_windows.normalized(norm)
    rep = representative_windows(z_train, representative_count, seed)
    say(f"converting to full-integer int8 ({len(rep)} representative windows)")
    model_bytes = convert_to_int8(model, rep)
    say(f"int8 model: {len(model_bytes)} bytes")

    measured = held_out.subsample(max_eval_windows, seed)
    say(f"measuring float32 vs int8 on {len(measured)} held-out windows")
    evaluation = evaluate(
        model, model_bytes, measured, spec, norm, holdout=holdout, progress=progress
    )
    m = evaluation.metrics
    say(
        f"held-out MAE (window-std units): float32 {m.float32.mae:.4f}, int8 {m.int8.mae:.4f} "
        f"({m.int8_mae_increase:+.2%}), naive last value "
        f"{sum(evaluation.naive_mae_by_horizon) / len(spec.horizons):.4f}"
    )
    check_int8_bound(m, max_int8_increase)

    notes = dict(training.notes)
    for h, f32, q, naive in zip(
        spec.horizons,
        evaluation.float32_mae_by_horizon,
        evaluation.int8_mae_by_horizon,
        evaluation.naive_mae_by_horizon,
        strict=True,
    ):
        notes[f"heldout_mae_h{h}"] = f"float32 {f32:.4f} int8 {q:.4f} naive {naive:.4f}"
    notes["max_int8_increase"] = max_int8_increase
    notes["representative_windows"] = len(rep)
    manifest = build_manifest(
        model_bytes=model_bytes,
        release=release,
        spec=spec,
        norm=norm,
        training=training.model_copy(update={"notes": notes}),
        metrics=m,
        golden_inputs=golden_windows(measured, norm, seed),
        private_key=private_key,
    )
    say(f"writing signed bundle {dest}")
    loaded = write_bundle(dest, model_bytes, manifest, private_key, force=force)
    say(
        f"bundle verified: signature (key {manifest.signing.key_id}), sha256, tensors, "
        f"{len(manifest.golden.vectors)} golden vectors"
    )
    return ExportResult(loaded, evaluation, len(model_bytes))


def release_key(key_dir: Path, say: Say = print, stem: str = "release") -> Ed25519PrivateKey:
    """The private key ``<key_dir>/<stem>.key``, created (with its .pub) when absent.

    Raises KeyInvalid when the file exists but is not an Ed25519 private key.
    """
    path = key_dir / f"{stem}.key"
    if path.exists():
        say(f"signing with existing key {path}")
        return load_private_key(path)
    key = generate_private_key()
    save_keypair(key, key_dir, stem)
    say(f"created release key {path} (keep it secret, never commit it)")
    return key


def create_keypair(key_dir: Path, stem: str = "release") -> tuple[Path, Path]:
    """Generate a new key pair; returns (private, public) paths.

    Raises:
        KeyExists: ``<stem>.key`` or ``<stem>.pub`` already exists in ``key_dir``.
    """
    private_path, public_path = key_dir / f"{stem}.key", key_dir / f"{stem}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyExists(f"{path} exists; refusing to overwrite a release key")
    try:
        save_keypair(generate_private_key(), key_dir, stem)
    except FileExistsError as exc:  # a concurrent keygen won the race
        raise KeyExists(str(exc)) from None
    return private_path, public_path
