"""``build`` and ``convert`` on a dataset CSV, as the CLI runs them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgetwin_contracts.manifest import Normalization, TrainingSummary
from edgetwin_contracts.signing import load_private_key
from model_export.bundle import Release, check_destination
from model_export.dataset import (
    FORECASTABLE_Z,
    Dataset,
    WindowSet,
    WindowSpec,
    load_dataset,
    split_windows,
)
from model_export.errors import ModelInvalid
from model_export.pipeline import ExportResult, Say, export_bundle
from model_export.train import TrainResult, TrainSettings, load_model, save_model, settings_summary


def windows_of(
    dataset: Dataset, spec: WindowSpec, norm: Normalization
) -> tuple[WindowSet, WindowSet]:
    """(train, held_out) forecastable windows of every channel, split by time."""
    train, held_out = split_windows(dataset.series(), spec)
    return train.forecastable(norm), held_out.forecastable(norm)


def build_from_csv(
    data: Path, out: Path, spec: WindowSpec, settings: TrainSettings, *, say: Say = print
) -> TrainResult:
    """Train on a dataset CSV and save ``out`` (.keras) plus its training sidecar.

    Raises:
        DatasetInvalid: the CSV is bad (file, line and column named).
        TrainingFailed: the loss diverged.
        ModelInvalid: ``out`` does not end in .keras.
    """
    if out.suffix != ".keras":
        raise ModelInvalid(f"{out}: the model file name must end in .keras")
    say(f"loading {data}")
    dataset = load_dataset(data, spec)
    _note_clock_steps(dataset, say)
    norm = Normalization()
    train_windows, held_out = windows_of(dataset, spec, norm)
    say(
        f"{dataset.rows} rows x {len(dataset.channels)} channels "
        f"({', '.join(dataset.channels)}), sample period {dataset.sample_period_s:g} s: "
        f"{len(train_windows)} training windows, {len(held_out)} held out"
    )
    z_in, z_target, _ = train_windows.normalized(norm)
    say(f"training (up to {settings.epochs} epochs)")
    from model_export.train import train

    result = train(z_in, z_target, settings)
    sidecar = {
        "window_length": spec.window_length,
        "horizons": list(spec.horizons),
        "stride": spec.stride,
        "holdout_fraction": spec.holdout_fraction,
        "normalization": norm.model_dump(mode="json"),
        "dataset": str(data),
        "dataset_sha256": dataset.sha256,
        "channels": list(dataset.channels),
        "sample_period_s": dataset.sample_period_s,
        "windows": len(train_windows),
        "epochs_run": result.epochs_run,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "settings": settings_summary(settings),
    }
    side = save_model(result.model, out, sidecar)
    say(f"trained {result.epochs_run} epochs (loss {result.train_loss:.5f}); wrote {out}, {side}")
    if result.still_improving:
        say(
            f"stopped at the epoch cap ({settings.epochs}) while the loss was still "
            f"improving: --epochs {settings.epochs * 2} may give a better model"
        )
    return result


def convert_to_bundle(
    *,
    model_path: Path,
    data_path: Path,
    dest: Path,
    key_path: Path,
    name: str | None,
    version: str,
    description: str,
    max_int8_increase: float,
    representative_count: int,
    seed: int,
    force: bool,
    say: Say = print,
) -> ExportResult:
    """Convert a built model to int8 with representative windows from ``data_path``,
    measure it on the held-out windows, and write the signed bundle ``dest``.

    Raises:
        ModelInvalid, DatasetInvalid, KeyInvalid, ConversionRefused, BundleExists.
    """
    private_key = load_private_key(key_path)  # fail before the slow steps
    check_destination(dest, force=force)
    say(f"loading {model_path}")
    model, sidecar = load_model(model_path)
    spec, norm = _spec_from_sidecar(model_path, sidecar, model)
    say(f"loading {data_path}")
    dataset = load_dataset(data_path, spec)
    _note_clock_steps(dataset, say)
    if dataset.sha256 != sidecar.get("dataset_sha256"):
        say("note: this CSV is not the one the model was trained on; all its windows are new")
    train_windows, held_out = windows_of(dataset, spec, norm)
    settings = sidecar.get("settings", {})
    notes = {k: v for k, v in settings.items() if isinstance(v, str | int | float)}
    training = TrainingSummary(
        dataset=str(sidecar.get("dataset", data_path)),
        dataset_sha256=sidecar.get("dataset_sha256"),
        series=len(sidecar.get("channels", dataset.channels)),
        windows=int(sidecar.get("windows", len(train_windows))),
        epochs=int(sidecar.get("epochs_run", 0)),
        notes=notes,
    )
    model_name = name or _safe_name(model_path.stem)
    return export_bundle(
        model=model,
        train_windows=train_windows,
        held_out=held_out,
        spec=spec,
        norm=norm,
        release=Release(
            name=model_name,
            version=version,
            description=description,
            channels=list(dataset.channels),
            sample_period_s=dataset.sample_period_s,
        ),
        training=training,
        private_key=private_key,
        dest=dest,
        force=force,
        holdout=(
            f"last {spec.holdout_fraction:.0%} of every channel of {data_path.name}; "
            f"windows with a target beyond {FORECASTABLE_Z:g} window-std left out"
        ),
        max_int8_increase=max_int8_increase,
        representative_count=representative_count,
        seed=seed,
        say=say,
    )


def _note_clock_steps(dataset: Dataset, say: Say) -> None:
    if dataset.clock_steps:
        lines = ", ".join(str(n) for n in dataset.clock_steps[:5])
        more = ", ..." if len(dataset.clock_steps) > 5 else ""
        say(
            f"note: {len(dataset.clock_steps)} rows of {dataset.path} repeat or step back "
            f"in time by at most an hour (clock changes; lines {lines}{more}); "
            "rows are used in file order"
        )


def _spec_from_sidecar(
    path: Path, sidecar: dict[str, Any], model: Any
) -> tuple[WindowSpec, Normalization]:
    try:
        spec = WindowSpec(
            window_length=int(sidecar["window_length"]),
            horizons=tuple(int(h) for h in sidecar["horizons"]),
            stride=int(sidecar.get("stride", 1)),
            holdout_fraction=float(sidecar.get("holdout_fraction", 0.2)),
        )
        norm = Normalization.model_validate(sidecar.get("normalization", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelInvalid(f"{path}: training sidecar is incomplete or invalid ({exc})") from None
    in_shape, out_shape = tuple(model.input_shape), tuple(model.output_shape)
    if in_shape != (None, spec.window_length) or out_shape != (None, len(spec.horizons)):
        raise ModelInvalid(
            f"{path}: model maps {in_shape} -> {out_shape}, the sidecar says window "
            f"{spec.window_length} and {len(spec.horizons)} horizons"
        )
    return spec, norm


def _safe_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:128] or "model"
