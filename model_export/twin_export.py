"""Building a twin bundle: period-mean series of every channel -> step samples -> Keras
-> int8 TFLite -> roll-forward residuals on held-out series -> signed bundle.

A sample is the last ``window_steps`` rows of every channel (z-scored with fixed
per-channel center and scale from the training series) plus the controls' next value;
its target is each output channel's next change over its ``step_scale``. The uncertainty
band stored in the manifest is measured by rolling the int8 model itself (the device's
``TwinModel``) forward on held-out series under their own control paths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.twin.model import LoadedTwin, TwinModel, load_twin
from edgetwin_contracts.manifest import (
    ErrorMetrics,
    Golden,
    GoldenVector,
    InputSpec,
    Manifest,
    ModelFile,
    ModelInfo,
    OutputSpec,
    Quantization,
    QuantParams,
    Signing,
    TrainingSummary,
    TwinChannel,
    TwinSpec,
    ValidationMetrics,
)
from edgetwin_contracts.signing import key_id
from model_export.bundle import Release, check_destination, write_signed
from model_export.convert import convert_to_int8, relative_increase, representative_windows
from model_export.errors import ExportError
from model_export.train import TrainSettings, build_model, train
from model_export.twin_rollout import RolloutSettings, fit_rollouts

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TwinRecipe:
    channels: tuple[str, ...]
    """Every channel, outputs first, then the controls."""
    controls: tuple[str, ...]
    period_s: float
    window_steps: int = 16
    horizon_steps: int = 60
    holdout_fraction: float = 0.15
    train: TrainSettings = field(
        default_factory=lambda: TrainSettings(
            hidden=(64, 64), epochs=25, batch_size=512, patience=3, loss="mse", verbose=0
        )
    )
    rollout: RolloutSettings | None = None
    """After the one-step fit, fit on the model's own roll-outs (model_export/twin_rollout.py)."""
    seed: int = 7


def normalization(series: FloatArray, recipe: TwinRecipe) -> list[TwinChannel]:
    """Fixed per-channel center/scale (and step_scale for outputs) from ``series``."""
    flat = series.reshape(-1, series.shape[-1])
    steps = np.diff(series, axis=1).reshape(-1, series.shape[-1])
    n_out = len(recipe.channels) - len(recipe.controls)
    found = []
    for j, name in enumerate(recipe.channels):
        scale = max(float(np.std(flat[:, j])), 1e-6)
        step = max(float(np.quantile(np.abs(steps[:, j]), 0.999)) / 4.0, 1e-6)
        found.append(
            TwinChannel(
                name=name,
                center=float(np.mean(flat[:, j])),
                scale=scale,
                step_scale=step if j < n_out else None,
            )
        )
    return found


def step_samples(
    series: FloatArray, chans: list[TwinChannel], recipe: TwinRecipe
) -> tuple[FloatArray, FloatArray]:
    """(inputs (N, width) z-scores, targets (N, outputs) in step_scale units)."""
    center = np.array([c.center for c in chans])
    scale = np.array([c.scale for c in chans])
    n_out = len(chans) - len(recipe.controls)
    step = np.array([c.step_scale or 1.0 for c in chans[:n_out]])
    z = (series - center) / scale
    w = recipe.window_steps
    s, t, c = z.shape
    idx = np.arange(w - 1, t - 1)
    windows = np.stack([z[:, i - w + 1 : i + 1].reshape(s, w * c) for i in idx], axis=1)
    controls = z[:, idx + 1, n_out:]
    inputs = np.concatenate([windows, controls], axis=-1).reshape(-1, w * c + c - n_out)
    targets = ((series[:, idx + 1, :n_out] - series[:, idx, :n_out]) / step).reshape(-1, n_out)
    return inputs, targets


def roll_residuals(model: TwinModel, held_out: FloatArray, horizon: int, starts: int) -> FloatArray:
    """(horizon, outputs) std of the int8 roll-forward error over held-out series,
    ``starts`` start points per series, each rolled under its series' own controls."""
    w, n_out = model.window_steps, len(model.outputs)
    errors = []
    for s in held_out:
        last = len(s) - horizon - 1
        for t0 in np.linspace(w, last, starts).astype(int):
            model.load_state(s[t0 - w : t0])
            path = model.roll(s[t0 : t0 + horizon, n_out:])
            errors.append(path - s[t0 : t0 + horizon, :n_out])
    std: FloatArray = np.sqrt(np.mean(np.square(np.stack(errors)), axis=0))
    return std


def build_twin(
    series: FloatArray,
    recipe: TwinRecipe,
    release: Release,
    private_key: Ed25519PrivateKey,
    dest: Path,
    *,
    dataset: str,
    initial_model: Any | None = None,
    base: TwinSpec | None = None,
    force: bool = False,
) -> tuple[LoadedTwin, Any]:
    """Train (or fine-tune ``initial_model``), convert, measure and write the signed
    twin bundle ``dest``; returns it loaded back by the device loader, and the Keras model.

    ``base``: the twin ``initial_model`` was trained as; its normalization is kept (the
    weights are tied to it) and its channels must be the recipe's.

    Raises ExportError (too little data, conversion failure), BundleExists.
    """
    check_destination(dest, force=force)
    n_series = len(series)
    n_hold = max(1, round(n_series * recipe.holdout_fraction))
    if n_series - n_hold < 1 or series.shape[1] < recipe.window_steps + recipe.horizon_steps + 2:
        raise ExportError(
            f"a twin needs at least 2 series of {recipe.window_steps + recipe.horizon_steps + 2}"
            f" periods; got {n_series} of {series.shape[1]}"
        )
    training, held_out = series[:-n_hold], series[-n_hold:]
    chans = normalization(training, recipe) if base is None else list(base.channels)
    if [c.name for c in chans] != list(recipe.channels):
        raise ExportError(
            f"the base twin's channels {[c.name for c in chans]} differ from {recipe.channels}"
        )
    x, y = step_samples(training, chans, recipe)
    rng = np.random.default_rng(recipe.seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    result = fit_twin(x, y, training, chans, recipe, initial_model)
    model_bytes = convert_to_int8(result.model, representative_windows(x, 2000, recipe.seed))
    spec = TwinSpec(
        channels=chans,
        controls=list(recipe.controls),
        window_steps=recipe.window_steps,
        horizon_steps=recipe.horizon_steps,
        residual_std={c.name: [0.0] * recipe.horizon_steps for c in chans[: len(y[0])]},
    )
    runner = TwinModel(model_bytes, spec)
    residual = roll_residuals(runner, held_out, recipe.horizon_steps, starts=12)
    spec = spec.model_copy(
        update={
            "residual_std": {
                c.name: residual[:, j].tolist() for j, c in enumerate(chans[: len(y[0])])
            }
        }
    )
    hx, hy = step_samples(held_out, chans, recipe)
    metrics = twin_metrics(result.model, runner, hx, hy)
    manifest = twin_manifest(
        model_bytes, runner, spec, recipe, release, key_id(private_key.public_key()), metrics, hx
    )
    manifest = manifest.model_copy(
        update={
            "training": TrainingSummary(
                dataset=dataset,
                dataset_sha256=hashlib.sha256(series.tobytes()).hexdigest(),
                series=n_series,
                windows=len(x),
                epochs=result.epochs_run,
                notes={"loss": recipe.train.loss, "hidden": str(recipe.train.hidden)},
            )
        }
    )
    write_signed(dest, model_bytes, manifest, private_key, force=True)
    return load_twin(dest, private_key.public_key()), result.model


def fit_twin(
    x: FloatArray,
    y: FloatArray,
    training: FloatArray,
    chans: list[TwinChannel],
    recipe: TwinRecipe,
    initial_model: Any | None,
) -> Any:
    """The one-step fit (a new model whose linear path starts at zero change, or
    ``initial_model`` fine-tuned), then the roll-out fit when the recipe has one."""
    if initial_model is None:
        initial_model = build_model(x.shape[1], y.shape[1], recipe.train.hidden, recipe.seed)
        linear = initial_model.get_layer("linear")
        linear.set_weights([np.zeros_like(v) for v in linear.get_weights()])
    result = train(x, y, recipe.train, initial_model=initial_model)
    if recipe.rollout is not None:
        fit_rollouts(
            result.model, training, chans, recipe.window_steps, len(recipe.controls), recipe.rollout
        )
    return result


def twin_metrics(
    keras_model: Any, runner: TwinModel, hx: FloatArray, hy: FloatArray
) -> ValidationMetrics:
    """One-step float32 vs int8 errors (step_scale units) on samples ``hx``/``hy``."""
    f32 = np.asarray(keras_model.predict(hx.astype(np.float32), batch_size=4096, verbose=0))
    f32_err = f32 - hy
    pick = hx[:: max(1, len(hx) // 4000)]
    truth = hy[:: max(1, len(hx) // 4000)]
    int8_err = np.empty_like(truth)
    for i, row in enumerate(pick):
        int8_err[i] = runner.invoke_z(row) - truth[i]
    f32_mae, int8_mae = float(np.mean(np.abs(f32_err))), float(np.mean(np.abs(int8_err)))
    return ValidationMetrics(
        holdout="the last share of series; one-step errors in step_scale units",
        windows=len(hx),
        float32=ErrorMetrics(mae=f32_mae, rmse=float(np.sqrt(np.mean(f32_err**2)))),
        int8=ErrorMetrics(mae=int8_mae, rmse=float(np.sqrt(np.mean(int8_err**2)))),
        int8_mae_increase=relative_increase(f32_mae, int8_mae),
    )


def twin_manifest(
    model_bytes: bytes,
    runner: TwinModel,
    spec: TwinSpec,
    recipe: TwinRecipe,
    release: Release,
    signing_key_id: str,
    metrics: ValidationMetrics,
    held_inputs: FloatArray,
) -> Manifest:
    """The manifest, to be signed by the key ``signing_key_id`` names (so a worker
    without the key can build it); golden vectors are raw rows (channel units) run
    through ``runner``."""
    center = np.array([c.center for c in spec.channels])
    scale = np.array([c.scale for c in spec.channels])
    n_ch, w = len(spec.channels), spec.window_steps
    vectors = []
    for i in np.linspace(0, len(held_inputs) - 1, 4).astype(int):
        z = held_inputs[i]
        raw = np.concatenate(
            [
                (z[: w * n_ch].reshape(w, n_ch) * scale + center).ravel(),
                z[w * n_ch :] * scale[n_ch - len(spec.controls) :]
                + center[n_ch - len(spec.controls) :],
            ]
        )
        out_q, out = runner.run_raw(raw)
        vectors.append(
            GoldenVector(
                input=raw.tolist(), output_q=out_q.astype(int).tolist(), output=out.tolist()
            )
        )
    n_out = len(spec.outputs)
    return Manifest(
        schema_version=1,
        model=ModelInfo(
            name=release.name,
            version=release.version,
            created_at=datetime.now(UTC).replace(microsecond=0),
            description=release.description,
        ),
        file=ModelFile(sha256=hashlib.sha256(model_bytes).hexdigest(), size_bytes=len(model_bytes)),
        input=InputSpec(
            channels=[c.name for c in spec.channels],
            window_length=w,
            sample_period_s=recipe.period_s,
            shape=[1, spec.input_width],
        ),
        output=OutputSpec(horizons=[1], units="step_scale", shape=[1, n_out]),
        quantization=Quantization(
            input=QuantParams(
                scale=runner.input_quant.scale, zero_point=runner.input_quant.zero_point
            ),
            output=QuantParams(
                scale=runner.output_quant.scale, zero_point=runner.output_quant.zero_point
            ),
        ),
        training=TrainingSummary(dataset="-", series=0, windows=0, epochs=0),
        metrics=metrics,
        golden=Golden(tolerance_lsb=1, vectors=vectors),
        signing=Signing(key_id=signing_key_id),
        twin=spec,
    )
