"""The twin's part of ``cloud-sync retrain``: fleet twin pretrain -> per-device
fine-tunes on Dask -> int8 -> what-if comparison with the running twin -> promote.

1. Every device's synced summaries at the twin's period (``twin_data``); a device
   without the twin's channels, or with too little data, is skipped with the reason.
2. Fleet twin (on the client): ``--fleet`` pretrains it from the shipped default twin's
   float weights (``model_export.twin_default.load_twin_reference``, keeping its
   normalization) on every usable device's training runs, one step ahead and then on
   its own roll-outs; saved as ``<reports_dir>/fleet/twin.keras`` and, in int8, as the
   signed bundle ``fleet/twin-bundle``. ``--device`` reuses it (pretrains when absent).
3. Per device on Dask (``twin_task.fine_tune_twin``): fine-tune from the fleet twin,
   int8, what-if errors of the candidate, the running twin and the fleet twin on the
   device's held-out runs.
4. Here: sign and write the candidate, decide (``twin_task.compare_twins``), report,
   publish the promoted ones (the same publisher as the forecasters').
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig, TwinRetrainSection
from cloud_sync.training.decision import Decision, Verdict, next_version, used_versions
from cloud_sync.training.publishing import FLEET_DIR, Publisher, Say
from cloud_sync.training.report import write_decision
from cloud_sync.training.twin_data import (
    PIECE_PERIODS,
    TwinData,
    TwinSkip,
    training_series,
    twin_data,
)
from cloud_sync.training.twin_report import TwinReport, write_twin_report
from cloud_sync.training.twin_running import TWINS_DIR, resolve_running_twin, shipped_twin
from cloud_sync.training.twin_task import (
    RunningTwin,
    TwinResult,
    TwinTask,
    compare_twins,
    fine_tune_twin,
)
from edgetwin_contracts.manifest import TwinSpec
from model_export.bundle import Release
from model_export.twin_export import TwinRecipe

FLEET_TWIN_MODEL = "twin.keras"
FLEET_TWIN_INFO = "twin.json"
FLEET_TWIN_BUNDLE = "twin-bundle"
FLEET_TWIN_NAME = "edgetwin-fleet-twin"
TWIN_HIDDEN = (64, 64)
"""The shipped default twin's hidden layers; the fleet twin and the fine-tunes keep them."""
ROLLOUT_STEPS = 12


@dataclass(frozen=True, slots=True)
class TwinOutcome:
    decisions: list[Decision]
    fleet: dict[str, Any] = field(default_factory=dict)


def twin_recipe(tw: TwinRetrainSection, base: TwinSpec, period_s: float, epochs: int) -> TwinRecipe:
    from model_export.train import TrainSettings
    from model_export.twin_rollout import RolloutSettings

    return TwinRecipe(
        channels=tuple(c.name for c in base.channels),
        controls=tuple(base.controls),
        period_s=period_s,
        window_steps=base.window_steps,
        horizon_steps=base.horizon_steps,
        train=TrainSettings(
            hidden=TWIN_HIDDEN,
            epochs=epochs,
            batch_size=256,
            learning_rate=tw.learning_rate,
            patience=3,
            loss="mse",
            verbose=0,
        ),
        rollout=(
            RolloutSettings(epochs=tw.rollout_epochs, steps=ROLLOUT_STEPS)
            if tw.rollout_epochs
            else None
        ),
    )


@dataclass(frozen=True, slots=True)
class TwinPlan:
    """What the twin retrain will do: decided from the database alone (no TensorFlow),
    so the retrain opens no Dask cluster when no twin can be trained."""

    skipped: list[Decision]
    usable: dict[str, TwinData]
    """Every device whose data can train the fleet twin."""
    trainable: dict[str, TwinData]
    """The targets among them: one fine-tune each."""
    base: TwinSpec
    period_s: float
    rebuild: bool


def plan_twins(
    engine: Engine, config: CloudConfig, targets: Sequence[str], *, rebuild_fleet: bool, say: Say
) -> TwinPlan:
    """Each target's twin data or the reason it is skipped (written as
    ``<device>/twins/skipped.json``). ``rebuild_fleet``: pretrain the fleet twin on every
    device (else reuse the saved one, pretraining when absent)."""
    from cloud_sync.training.dataset import device_names

    t = config.training
    tw = t.twin
    base, period = shipped_twin()
    channels = tuple(c.name for c in base.channels)
    fleet = t.reports_dir / FLEET_DIR
    is_saved = (fleet / FLEET_TWIN_MODEL).is_file() and (fleet / FLEET_TWIN_BUNDLE).is_dir()
    rebuild = rebuild_fleet or not is_saved
    names = device_names(engine) if rebuild else list(targets)
    data: dict[str, TwinData | TwinSkip] = {}
    for name in names:
        data[name] = twin_data(
            engine,
            name,
            channels,
            period,
            holdout_fraction=tw.holdout_fraction,
            min_periods=tw.min_periods,
            held_out_run=base.window_steps + base.horizon_steps,
            # A training run shorter than one series is never trained on (training_series).
            train_run=PIECE_PERIODS,
        )
    skipped = _skipped(targets, data, t.reports_dir, say)
    usable = {n: d for n, d in data.items() if isinstance(d, TwinData)}
    trainable = {n: usable[n] for n in targets if n in usable}
    return TwinPlan(skipped, usable, trainable, base, period, rebuild)


def retrain_twins(
    engine: Engine,
    config: CloudConfig,
    plan: TwinPlan,
    *,
    client: Any,
    key: Ed25519PrivateKey,
    signing: str,
    publish: Publisher | None,
    say: Say,
    progress: bool,
) -> TwinOutcome:
    """The fleet twin, then the planned devices' fine-tunes on ``client``; a decision
    per target (the plan's skips first)."""
    from cloud_sync.training.fanout import run_each
    from edgetwin_contracts.signing import key_id

    t = config.training
    tw = t.twin
    decisions = list(plan.skipped)
    if not plan.trainable:
        return TwinOutcome(decisions)
    base, period = plan.base, plan.period_s
    fleet_model, info, fleet_bytes = fleet_twin(
        t.reports_dir, tw, base, period, list(plan.usable.values()), plan.rebuild, key, say
    )
    weights = [np.asarray(w) for w in fleet_model.get_weights()]
    tasks = []
    for name, d in plan.trainable.items():
        running = resolve_running_twin(engine, name, t.reports_dir)
        version = next_version(running.version, used_versions(t.reports_dir / name / TWINS_DIR))
        tasks.append(
            TwinTask(
                device=name,
                data=d,
                start_weights=weights,
                base=base,
                running=running,
                recipe=twin_recipe(tw, base, period, tw.finetune_epochs),
                release=_release(name, version, d),
                signing_key_id=key_id(key.public_key()),
                fleet_bytes=fleet_bytes,
            )
        )
    say(f"fine-tuning {len(tasks)} device twin(s) on Dask")
    for task, outcome in run_each(client, tasks, fine_tune_twin, "twin", progress=progress):
        if isinstance(outcome, BaseException):
            reason = f"failed: {type(outcome).__name__}: {outcome}"
            say(f"{task.device} twin: {reason}")
            decisions.append(Decision(task.device, Verdict.FAILED, reason))
            continue
        decision = _finish(task, outcome, config, key, signing, info, publish)
        say(f"{task.device} twin: {decision.reason}")
        decisions.append(decision)
    return TwinOutcome(decisions, info)


def _release(device: str, version: str, d: TwinData) -> Release:
    from model_export.twin_default import DEFAULT_TWIN_NAME

    return Release(
        name=f"{DEFAULT_TWIN_NAME}-{device}",
        version=version,
        description=(
            f"The fleet twin fine-tuned on {device}'s synced summaries "
            f"({d.train_periods} periods of {d.period_s:g} s)."
        ),
    )


def _skipped(
    targets: Sequence[str], data: dict[str, TwinData | TwinSkip], reports_dir: Path, say: Say
) -> list[Decision]:
    decisions = []
    for name in targets:
        d = data[name]
        if isinstance(d, TwinSkip):
            say(f"{name} twin: skipped: {d.reason}")
            decisions.append(Decision(name, Verdict.SKIPPED, d.reason))
            write_decision(
                reports_dir / name / TWINS_DIR / "skipped.json",
                {"device": name, "verdict": Verdict.SKIPPED.value, "reason": d.reason},
            )
    return decisions


def fleet_twin(
    reports_dir: Path,
    tw: TwinRetrainSection,
    base: TwinSpec,
    period: float,
    usable: list[TwinData],
    rebuild: bool,
    key: Ed25519PrivateKey,
    say: Say,
) -> tuple[Any, dict[str, Any], bytes]:
    """The fleet twin (Keras), what it was trained on, and its int8 bytes: loaded, or
    pretrained from the shipped default on every usable device and saved (with its
    signed int8 bundle ``fleet/twin-bundle``)."""
    from cloud_sync.training.task import limit_threads

    limit_threads()
    import keras

    from edgetwin_contracts.manifest import MODEL_FILE
    from model_export.twin_default import load_twin_reference
    from model_export.twin_export import fit_twin, step_samples

    folder = reports_dir / FLEET_DIR
    path = folder / FLEET_TWIN_MODEL
    if not rebuild:
        info = json.loads((folder / FLEET_TWIN_INFO).read_text(encoding="utf-8"))
        say(f"fleet twin {path} ({info.get('summary', '')})")
        return (
            keras.models.load_model(path),
            info,
            (folder / FLEET_TWIN_BUNDLE / MODEL_FILE).read_bytes(),
        )
    recipe = twin_recipe(tw, base, period, tw.pretrain_epochs)
    chans = list(base.channels)
    series = np.concatenate([training_series(d.train) for d in usable])
    x, y = step_samples(series, chans, recipe)
    order = np.random.default_rng(recipe.seed).permutation(len(x))
    x, y = x[order], y[order]
    say(
        f"fleet twin pretrain from the shipped default: {len(series)} series "
        f"({len(x)} samples) of {len(usable)} device(s), up to {tw.pretrain_epochs} epochs"
    )
    model = load_twin_reference()
    result = fit_twin(x, y, series, chans, recipe, model)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{FLEET_TWIN_MODEL}.tmp.keras"
    result.model.save(tmp)
    tmp.replace(path)
    model_bytes = _write_fleet_bundle(
        folder / FLEET_TWIN_BUNDLE, result.model, x, base, recipe, usable, key
    )
    info = {
        "summary": (
            f"{len(series)} series of {len(usable)} device(s) from the shipped default, "
            f"{result.epochs_run} epochs, loss {result.train_loss:.4f}"
        ),
        "devices": sorted(d.device for d in usable),
        "series": len(series),
        "samples": len(x),
        "epochs": result.epochs_run,
        "created_at": time.time(),
    }
    write_decision(folder / FLEET_TWIN_INFO, info)
    return result.model, info, model_bytes


def _write_fleet_bundle(
    dest: Path,
    model: Any,
    x: Any,
    base: TwinSpec,
    recipe: TwinRecipe,
    usable: list[TwinData],
    key: Ed25519PrivateKey,
) -> bytes:
    """The fleet twin in int8 as a signed bundle (its band from every device's held-out
    runs): what a bench or an operator loads to try it; never released by itself."""
    from cloud_sync.training.twin_task import mark_steps, start_points, whatif_scores
    from edge_agent.twin.model import TwinModel
    from edgetwin_contracts.signing import key_id
    from model_export.bundle import write_signed
    from model_export.convert import convert_to_int8, representative_windows
    from model_export.twin_export import step_samples, twin_manifest, twin_metrics

    model_bytes = convert_to_int8(model, representative_windows(x, 2000, recipe.seed))
    runner = TwinModel(model_bytes, base.model_copy(update={"residual_std": {}}))
    held = [r for d in usable for r in d.held_out]
    n_out = len(base.outputs)
    scales = np.array([c.scale for c in base.channels[:n_out]])
    starts = start_points(held, base.window_steps, base.horizon_steps)
    marks = mark_steps(recipe.period_s, base.horizon_steps)
    scores = whatif_scores(runner, held, starts, base.horizon_steps, marks, scales)
    residual = np.asarray(scores.residual_std)
    spec = base.model_copy(
        update={
            "residual_std": {
                c.name: residual[:, j].tolist() for j, c in enumerate(base.channels[:n_out])
            }
        }
    )
    pairs = [step_samples(r[None], list(base.channels), recipe) for r in held]
    hx = np.concatenate([p[0] for p in pairs])
    hy = np.concatenate([p[1] for p in pairs])
    runner = TwinModel(model_bytes, spec)
    release = Release(
        name=FLEET_TWIN_NAME,
        version="1.0.0",
        description=f"The fleet twin: the default twin pretrained on {len(usable)} device(s).",
    )
    manifest = twin_manifest(
        model_bytes, runner, spec, recipe, release, key_id(key.public_key()),
        twin_metrics(model, runner, hx, hy), hx,
    )  # fmt: skip
    write_signed(dest, model_bytes, manifest, key, force=True)
    return model_bytes


def _finish(
    task: TwinTask,
    result: TwinResult,
    config: CloudConfig,
    key: Ed25519PrivateKey,
    signing: str,
    fleet_info: dict[str, Any],
    publish: Publisher | None,
) -> Decision:
    """Sign and write the candidate, decide, publish, install, and write the report."""
    from edge_agent.twin.model import load_twin
    from model_export.bundle import write_signed

    t = config.training
    device, version = task.device, task.release.version
    out = t.reports_dir / device / TWINS_DIR / version
    bundle_dir = out / "bundle"
    write_signed(bundle_dir, result.model_bytes, result.manifest, key, force=True)
    load_twin(bundle_dir, key.public_key())  # proves it verifies, golden vectors included
    if result.running is None:
        verdict = Verdict.NOT_PROMOTED
        reason = "not promoted: " + "; ".join(result.notes)
    else:
        ok, reason = compare_twins(
            result.candidate, result.running, t.twin.margin, task.data.period_s
        )
        verdict = Verdict.PROMOTED if ok else Verdict.NOT_PROMOTED
    if verdict is Verdict.PROMOTED:
        where = (
            publish(device, version, bundle_dir, out)
            if publish is not None
            else f"not published ([releases] public_key not set); bundle left in {bundle_dir}"
        )
        reason = f"{reason}; {where}"
        if config.releases.private_key is not None:
            # The cloud's what-if answers with it (verified with [releases] public_key).
            from cloud_sync.training.twin import device_twin_dir

            write_signed(device_twin_dir(t.reports_dir, device), result.model_bytes,
                         result.manifest, key, force=True)  # fmt: skip
    decision = Decision(device, verdict, reason, version, out)
    write_twin_report(
        out,
        TwinReport(
            data=task.data,
            result=result,
            running=task.running,
            decision=decision,
            margin=t.twin.margin,
            fleet=fleet_info,
            signing=signing,
        ),
    )
    return decision


__all__ = ["RunningTwin", "TwinOutcome", "TwinPlan", "fleet_twin", "plan_twins", "retrain_twins"]
