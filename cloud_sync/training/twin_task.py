"""One device's twin fine-tune, int8 conversion and what-if evaluation: a Dask task.

Like ``task.fine_tune_device``, a pure function of its picklable task: the fleet twin
arrives as weights, the twin the device runs (and the fleet twin, for the report) as
verified int8 bytes, the data as runs of periods. The worker builds the unsigned
manifest (it knows the signing key's id, never the key); the client signs it.

Every model is judged the same way, through the device's own ``TwinModel`` in int8:
from start points in the device's held-out runs, rolled forward under the controls
the device actually had, against what its channels actually did (``whatif_scores``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_sync.training.twin_data import TwinData, training_series
from edge_agent.twin.model import TwinModel
from edgetwin_contracts.manifest import Manifest, TrainingSummary, TwinSpec
from model_export.bundle import Release
from model_export.twin_export import TwinRecipe

FloatArray = npt.NDArray[np.float64]

MARKS_S = (0.0, 600.0, 1800.0, 3600.0)
"""What-if errors are reported at one step (0: the first period), 10, 30 and 60 min."""
MAX_STARTS = 240
"""Start points per device's held-out data (evenly spread): enough for a stable mean."""


@dataclass(frozen=True, slots=True)
class RunningTwin:
    """The twin a device runs now (or would: the shipped default), as it runs it."""

    name: str
    version: str
    model_bytes: bytes
    spec: TwinSpec
    source: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class WhatIfScores:
    """What-if errors from held-out start points, channel units.

    Attributes:
        marks: steps ahead (1-based) the errors are taken at.
        mae: per mark, per output channel: MAE over the start points.
        normalized: per mark, the mean over outputs of MAE / the channel's scale.
        residual_std: (horizon, outputs) RMS error per step (the what-if band).
        starts: start points measured.
    """

    marks: list[int]
    mae: list[dict[str, float]]
    normalized: list[float]
    residual_std: list[list[float]]
    starts: int


@dataclass(frozen=True, slots=True)
class TwinTask:
    device: str
    data: TwinData
    start_weights: list[FloatArray]
    """The fleet twin's ``get_weights()``."""
    base: TwinSpec
    """The spec the weights belong to (normalization, window, horizon, controls)."""
    running: RunningTwin
    recipe: TwinRecipe
    release: Release
    signing_key_id: str
    fleet_bytes: bytes | None = None
    """The fleet twin in int8, scored beside (None: not scored)."""


@dataclass(frozen=True, slots=True)
class TwinResult:
    device: str
    model_bytes: bytes
    manifest: Manifest
    """Unsigned; the client signs it."""
    candidate: WhatIfScores
    running: WhatIfScores | None
    """None when the running twin has other channels or controls (not comparable)."""
    fleet: WhatIfScores | None
    epochs_run: int
    train_loss: float
    val_loss: float | None
    pieces: int
    samples: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def mark_steps(period_s: float, horizon: int) -> list[int]:
    """MARKS_S as steps of ``period_s`` (at least 1, at most ``horizon``), deduplicated."""
    steps = [min(horizon, max(1, round(s / period_s))) for s in MARKS_S]
    return sorted(set(steps))


def start_points(runs: list[FloatArray], window: int, horizon: int) -> list[tuple[int, int]]:
    """(run, t0) pairs with ``window`` periods before t0 and ``horizon`` from it, at most
    MAX_STARTS, evenly spread over all the candidates (every period is one)."""
    every = [(i, t0) for i, run in enumerate(runs) for t0 in range(window, len(run) - horizon + 1)]
    if len(every) <= MAX_STARTS:
        return every
    pick = np.linspace(0, len(every) - 1, MAX_STARTS).round().astype(int)
    return [every[i] for i in pick]


def whatif_scores(
    model: TwinModel,
    runs: list[FloatArray],
    starts: list[tuple[int, int]],
    horizon: int,
    marks: list[int],
    scales: FloatArray,
) -> WhatIfScores:
    """Roll ``model`` from each start under the run's own controls; errors against the
    run's outputs. ``scales``: each output channel's scale (the normalized score)."""
    w, n_out = model.window_steps, len(model.outputs)
    errors = np.empty((len(starts), horizon, n_out))
    for k, (i, t0) in enumerate(starts):
        run = runs[i]
        model.load_state(run[t0 - w : t0])
        path = model.roll(run[t0 : t0 + horizon, n_out:])
        errors[k] = path - run[t0 : t0 + horizon, :n_out]
    absolute = np.abs(errors)
    mae, normalized = [], []
    for m in marks:
        per = absolute[:, m - 1, :].mean(axis=0)
        mae.append({name: float(v) for name, v in zip(model.outputs, per, strict=True)})
        normalized.append(float(np.mean(per / scales)))
    residual = np.sqrt(np.mean(np.square(errors), axis=0))
    return WhatIfScores(marks, mae, normalized, residual.tolist(), len(starts))


def fine_tune_twin(task: TwinTask) -> TwinResult:
    """Fine-tune the fleet twin on the device's training runs, convert to int8, and
    score candidate, running twin and fleet twin on the held-out runs.

    Raises TrainingFailed (NaN loss, no samples) or ExportError (conversion failed).
    """
    from cloud_sync.training.task import limit_threads

    started = time.monotonic()
    limit_threads()
    base, data = task.base, task.data
    chans = list(base.channels)
    result, model_bytes, series, samples = _fit(task)
    horizon = base.horizon_steps
    scales = np.array([c.scale for c in chans[: len(base.outputs)]])
    marks = mark_steps(data.period_s, horizon)
    blank = base.model_copy(update={"residual_std": {}})
    notes: list[str] = []
    running_model: TwinModel | None = None
    r = task.running.spec
    if [c.name for c in r.channels] == [c.name for c in chans] and r.controls == base.controls:
        running_model = TwinModel(task.running.model_bytes, r)
    else:
        notes.append(
            f"the running twin reads {[c.name for c in r.channels]} with controls "
            f"{r.controls}, not the candidate's: not comparable"
        )
    starts = start_points(data.held_out, max(base.window_steps, r.window_steps), horizon)

    def scored(model: TwinModel) -> WhatIfScores:
        return whatif_scores(model, data.held_out, starts, horizon, marks, scales)

    cand = scored(TwinModel(model_bytes, blank))
    running = None if running_model is None else scored(running_model)
    fleet = None if task.fleet_bytes is None else scored(TwinModel(task.fleet_bytes, blank))
    manifest = _manifest(task, result, model_bytes, cand, len(series), samples)
    return TwinResult(
        device=task.device,
        model_bytes=model_bytes,
        manifest=manifest,
        candidate=cand,
        running=running,
        fleet=fleet,
        epochs_run=result.epochs_run,
        train_loss=result.train_loss,
        val_loss=result.val_loss,
        pieces=len(series),
        samples=samples,
        seconds=time.monotonic() - started,
        notes=notes,
    )


def _fit(task: TwinTask) -> tuple[Any, bytes, FloatArray, int]:
    """(TrainResult, int8 bytes, training series, samples): the fleet twin's weights
    fine-tuned one step ahead and on roll-outs, then converted."""
    from model_export.convert import convert_to_int8, representative_windows
    from model_export.errors import TrainingFailed
    from model_export.train import build_model
    from model_export.twin_export import fit_twin, step_samples

    recipe, chans = task.recipe, list(task.base.channels)
    series = training_series(task.data.train)
    if len(series) == 0:
        raise TrainingFailed(f"{task.device}: no training run of a whole piece")
    x, y = step_samples(series, chans, recipe)
    order = np.random.default_rng(recipe.seed).permutation(len(x))
    x, y = x[order], y[order]
    model = build_model(x.shape[1], y.shape[1], recipe.train.hidden, recipe.seed)
    model.set_weights(task.start_weights)
    result = fit_twin(x, y, series, chans, recipe, model)
    model_bytes = convert_to_int8(result.model, representative_windows(x, 2000, recipe.seed))
    return result, model_bytes, series, len(x)


def _manifest(
    task: TwinTask,
    result: Any,
    model_bytes: bytes,
    cand: WhatIfScores,
    series: int,
    samples: int,
) -> Manifest:
    """The unsigned manifest: the band from the held-out roll-forward errors, one-step
    metrics and golden vectors from held-out samples."""
    from model_export.twin_export import step_samples, twin_manifest, twin_metrics

    base, recipe, data = task.base, task.recipe, task.data
    chans = list(base.channels)
    residual = np.asarray(cand.residual_std)
    spec = base.model_copy(
        update={
            "residual_std": {
                c.name: residual[:, j].tolist() for j, c in enumerate(chans[: len(base.outputs)])
            }
        }
    )
    pairs = [step_samples(r[None], chans, recipe) for r in data.held_out]
    hx = np.concatenate([p[0] for p in pairs])
    hy = np.concatenate([p[1] for p in pairs])
    runner = TwinModel(model_bytes, spec)
    metrics = twin_metrics(result.model, runner, hx, hy)
    manifest = twin_manifest(
        model_bytes, runner, spec, recipe, task.release, task.signing_key_id, metrics, hx
    )
    return manifest.model_copy(
        update={
            "training": TrainingSummary(
                dataset=f"cloud-sync summaries of {task.device} at {data.period_s:g} s",
                series=series,
                windows=samples,
                epochs=result.epochs_run,
                notes={
                    "loss": recipe.train.loss,
                    "hidden": str(recipe.train.hidden),
                    "start": "fleet twin",
                    "running_at_training": f"{task.running.name} {task.running.version}",
                },
            )
        }
    )


WORSE_SLACK = 0.005
"""A mark at most this much worse (0.5 %) than the running twin's counts as a tie."""


def compare_twins(
    candidate: WhatIfScores, running: WhatIfScores, margin: float, period_s: float
) -> tuple[bool, str]:
    """Promote when the mean over the marks of candidate / running what-if error (each
    normalized, so every horizon counts the same) is <= 1 - margin and no mark is worse
    than the running twin's: a gain at 10 minutes does not buy a loss at an hour, which
    the advisor and a what-if would pay; (promote, reason)."""
    ratios = [
        c / max(r, 1e-12) for c, r in zip(candidate.normalized, running.normalized, strict=True)
    ]
    relative = float(np.mean(ratios))
    parts = ", ".join(
        f"{_mark_text(m, period_s)} {q:.2f}x" for m, q in zip(candidate.marks, ratios, strict=True)
    )
    if not np.isfinite(relative):
        return False, "not promoted: the candidate's what-if error is not finite"
    worse = [
        _mark_text(m, period_s)
        for m, q in zip(candidate.marks, ratios, strict=True)
        if q > 1.0 + WORSE_SLACK
    ]
    if worse and relative <= 1.0 - margin:
        return False, (
            f"not promoted: what-if error {relative:.2f}x the running twin's ({parts}), but "
            f"worse than it at {', '.join(worse)}"
        )
    if relative <= 1.0 - margin:
        return True, (
            f"promoted: what-if error {relative:.2f}x the running twin's ({parts}; "
            f"margin {margin:.0%})"
        )
    return False, (
        f"not promoted: what-if error {relative:.2f}x the running twin's ({parts}), not "
        f"below it by the margin of {margin:.0%} (needed <= {1 - margin:.2f}x)"
    )


def _mark_text(steps: int, period_s: float) -> str:
    from edgetwin_common.durations import duration_text

    return "1 step" if steps == 1 else duration_text(steps * period_s)
