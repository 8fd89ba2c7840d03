"""``cloud-sync retrain``: fleet pretrain -> per-device fine-tune -> int8 -> compare -> promote.

1. Every device's summaries become training and held-out windows (``dataset``).
2. Fleet model: ``--fleet`` continues the last fleet model (``<reports_dir>/fleet/
   fleet.keras``; the first time ``model_export.default_model.KERAS_REFERENCE``) for
   ``pretrain_epochs`` on the union of all devices' training windows. ``--device`` reuses
   the last fleet model and pretrains only when there is none yet.
3. Per device, on Dask (``fanout``): fine-tune, convert to int8, measure candidate and
   deployed model on the device's held-out windows (``task``).
4. Here, per result: sign and write the candidate bundle, decide (``decision``), write
   the report, and publish the promoted ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig, TrainingSection
from cloud_sync.training.dataset import (
    DeviceWindows,
    Skip,
    device_names,
    device_windows,
    load_series,
)
from cloud_sync.training.decision import (
    Decision,
    Verdict,
    compare,
    model_name,
    next_version,
    used_versions,
)
from cloud_sync.training.deployed import resolve_deployed
from cloud_sync.training.fanout import dask_client, run_tasks
from cloud_sync.training.publishing import (
    FLEET_DIR,
    Publisher,
    Say,
    releases_publisher,
)
from cloud_sync.training.report import ReportInputs, write_decision, write_report
from cloud_sync.training.task import FineTuneResult, FineTuneTask
from cloud_sync.training.twin_retrain import TwinOutcome, plan_twins, retrain_twins
from edgetwin_contracts.manifest import Normalization, TrainingSummary
from model_export.bundle import Release, build_manifest, golden_windows, write_bundle
from model_export.dataset import WindowSet, WindowSpec
from model_export.train import TrainSettings, settings_summary

FLEET_MODEL = "fleet.keras"
FLEET_INFO = "fleet.json"
HIDDEN = (64, 32)
"""The default model's hidden layers (KERAS_REFERENCE); fine-tunes keep them."""


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    """One decision per device asked for; ``fleet`` is the fleet model's summary."""

    decisions: list[Decision]
    fleet: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    twins: list[Decision] = field(default_factory=list)
    """One twin decision per device asked for ([training.twin]; empty when disabled)."""
    twin_fleet: dict[str, Any] = field(default_factory=dict)


def retrain(
    engine: Engine,
    config: CloudConfig,
    *,
    devices: Sequence[str] | None = None,
    publisher: Publisher | Literal["releases"] | None = "releases",
    client: Any = None,
    say: Say = print,
    progress: bool = True,
) -> RetrainOutcome:
    """Retrain ``devices`` (None: every registered device).

    ``client``: a ``distributed.Client`` to use; None opens one from [training]
    (scheduler_address, else a LocalCluster). ``publisher`` publishes a promoted bundle:
    "releases": ``releases_publisher``; None: never (the bundle stays in its report
    folder).

    Raises DeviceNotFound for an unknown name in ``devices``. A device with too little
    data is skipped with its reason; a device whose task fails gets a FAILED decision.
    """
    started = time.monotonic()
    t = config.training
    spec = WindowSpec(holdout_fraction=t.holdout_fraction)
    norm = Normalization()
    targets = list(devices) if devices is not None else device_names(engine)
    fleet_path = t.reports_dir / FLEET_DIR / FLEET_MODEL
    need_fleet_data = devices is None or not fleet_path.exists()
    names = device_names(engine) if need_fleet_data else targets
    for name in targets:
        load_series(engine, name)  # raises DeviceNotFound before any work
    windows: dict[str, DeviceWindows | Skip] = {}
    for name in _bar(names, "summaries", "device", progress):
        windows[name] = device_windows(load_series(engine, name), spec, t.min_summaries, norm)

    decisions = _skipped(targets, windows, t.reports_dir, say)
    trainable = {n: w for n in targets if isinstance(w := windows[n], DeviceWindows)}
    twins = (
        plan_twins(engine, config, targets, rebuild_fleet=devices is None, say=say)
        if t.twin.enabled
        else None
    )
    if not trainable and (twins is None or not twins.trainable):
        skipped_twins = [] if twins is None else twins.skipped
        return RetrainOutcome(decisions, {}, time.monotonic() - started, skipped_twins)
    key, signing = _signing_key(config)
    publish = releases_publisher(engine, config) if publisher == "releases" else publisher
    fleet_info: dict[str, Any] = {}
    twin_outcome = TwinOutcome([])
    with _client(client, t) as dask:
        if trainable:
            fleet_info = _forecasters(
                engine, t, spec, norm, windows, trainable, need_fleet_data, dask,
                key, signing, publish, decisions, say, progress,
            )  # fmt: skip
        if twins is not None:
            twin_outcome = retrain_twins(
                engine, config, twins, client=dask, key=key, signing=signing,
                publish=publish, say=say, progress=progress,
            )  # fmt: skip
    return RetrainOutcome(
        decisions,
        fleet_info,
        time.monotonic() - started,
        twin_outcome.decisions,
        twin_outcome.fleet,
    )


def _forecasters(
    engine: Engine,
    t: TrainingSection,
    spec: WindowSpec,
    norm: Normalization,
    windows: dict[str, DeviceWindows | Skip],
    trainable: dict[str, DeviceWindows],
    rebuild: bool,
    dask: Any,
    key: Ed25519PrivateKey,
    signing: str,
    publish: Publisher | None,
    decisions: list[Decision],
    say: Say,
    progress: bool,
) -> dict[str, Any]:
    """The forecasters' fleet model and fine-tunes; decisions appended; the fleet info."""
    fleet_model, fleet_info = _fleet_model(
        t,
        spec,
        norm,
        [w for w in windows.values() if isinstance(w, DeviceWindows)],
        rebuild=rebuild,
        say=say,
        progress=progress,
    )
    tasks = _fine_tune_tasks(engine, t, spec, norm, fleet_model, trainable)
    say(f"fine-tuning {len(tasks)} device(s) on Dask")
    for task, outcome in run_tasks(dask, tasks, progress=progress):
        if isinstance(outcome, BaseException):
            reason = f"failed: {type(outcome).__name__}: {outcome}"
            say(f"{task.device}: {reason}")
            decisions.append(Decision(task.device, Verdict.FAILED, reason))
            continue
        decision = _finish(task, outcome, t, spec, norm, key, signing, fleet_info, publish)
        say(f"{task.device}: {decision.reason}")
        decisions.append(decision)
    return fleet_info


def _skipped(
    targets: list[str], windows: dict[str, DeviceWindows | Skip], reports_dir: Path, say: Say
) -> list[Decision]:
    """A SKIPPED decision (said, and written as ``<device>/skipped.json``) for each
    target with too little data."""
    decisions = []
    for name in targets:
        w = windows[name]
        if isinstance(w, Skip):
            say(f"{name}: skipped: {w.reason}")
            decisions.append(Decision(name, Verdict.SKIPPED, w.reason))
            write_decision(
                reports_dir / name / "skipped.json",
                {"device": name, "verdict": Verdict.SKIPPED.value, "reason": w.reason},
            )
    return decisions


def _fine_tune_tasks(
    engine: Engine,
    t: TrainingSection,
    spec: WindowSpec,
    norm: Normalization,
    fleet_model: Any,
    windows: dict[str, DeviceWindows],
) -> list[FineTuneTask]:
    """One task per trainable device, starting from the fleet model's weights."""
    settings = TrainSettings(
        hidden=HIDDEN,
        epochs=t.finetune_epochs,
        batch_size=t.batch_size,
        learning_rate=t.finetune_learning_rate,
        patience=t.patience,
        validation_fraction=0.1,
        verbose=0,
    )
    weights = [np.asarray(w) for w in fleet_model.get_weights()]
    generic = _generic_weights() if t.finetune_from_generic else None
    tasks = []
    for name, w in windows.items():
        tasks.append(
            FineTuneTask(
                device=name,
                windows=w,
                fleet_weights=weights,
                hidden=HIDDEN,
                spec=spec,
                settings=settings,
                deployed=resolve_deployed(engine, name, t.reports_dir),
                norm=norm,
                generic_weights=generic,
                weight_by_window_std=t.weight_by_window_std,
            )
        )
    return tasks


def _bar(items: list[str], desc: str, unit: str, progress: bool) -> Any:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, leave=False, disable=None)


class _client:
    """The caller's client, or one opened (and closed) from [training]."""

    def __init__(self, client: Any, t: TrainingSection) -> None:
        self._given = client
        self._t = t
        self._cm: Any = None

    def __enter__(self) -> Any:
        if self._given is not None:
            return self._given
        self._cm = dask_client(self._t.scheduler_address, self._t.n_workers)
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)


def _fleet_model(
    t: TrainingSection,
    spec: WindowSpec,
    norm: Normalization,
    all_windows: list[DeviceWindows],
    *,
    rebuild: bool,
    say: Say,
    progress: bool,
) -> tuple[Any, dict[str, Any]]:
    """The fleet model: loaded, or pretrained on every device's training windows and saved."""
    from cloud_sync.training.task import limit_threads

    limit_threads()
    import keras

    from model_export.default_model import KERAS_REFERENCE
    from model_export.train import train

    folder = t.reports_dir / FLEET_DIR
    path = folder / FLEET_MODEL
    if not rebuild:
        info = json.loads((folder / FLEET_INFO).read_text(encoding="utf-8"))
        say(f"fleet model {path} ({info.get('summary', '')})")
        return keras.models.load_model(path), info
    start = path if path.exists() else KERAS_REFERENCE
    model = keras.models.load_model(start)
    parts = [w.train.subsample(t.pretrain_windows_per_device) for w in all_windows]
    union = WindowSet(
        np.concatenate([p.inputs for p in parts]), np.concatenate([p.targets for p in parts])
    )
    # Interleave devices so the last 10 % (early stopping's validation) is not one device.
    order = np.random.default_rng(7).permutation(len(union))
    union = WindowSet(union.inputs[order], union.targets[order])
    z_in, z_target, _ = union.normalized(norm)
    say(
        f"fleet pretrain from {start.name}: {len(union)} windows of {len(all_windows)} "
        f"device(s), up to {t.pretrain_epochs} epochs"
    )
    result = train(
        z_in,
        z_target,
        TrainSettings(
            hidden=HIDDEN,
            epochs=t.pretrain_epochs,
            batch_size=t.batch_size,
            learning_rate=t.pretrain_learning_rate,
            patience=t.patience,
            verbose=2 if progress else 0,
        ),
        initial_model=model,
    )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{FLEET_MODEL}.tmp.keras"
    result.model.save(tmp)
    tmp.replace(path)
    info = {
        "summary": (
            f"{len(union)} windows of {len(all_windows)} device(s) from {start.name}, "
            f"{result.epochs_run} epochs, loss {result.train_loss:.4f}"
        ),
        "windows": len(union),
        "devices": len(all_windows),
        "epochs": result.epochs_run,
        "started_from": str(start),
        "created_at": time.time(),
    }
    write_decision(folder / FLEET_INFO, info)
    return result.model, info


def _generic_weights() -> list[npt.NDArray[np.float64]]:
    """The shipped generic model's float weights (the fleet model's first start)."""
    import keras

    from model_export.default_model import KERAS_REFERENCE

    return [np.asarray(w) for w in keras.models.load_model(KERAS_REFERENCE).get_weights()]


def _signing_key(config: CloudConfig) -> tuple[Ed25519PrivateKey, str]:
    """[releases] private_key, else a one-off key (publishing re-signs with the fleet's)."""
    from edgetwin_contracts.signing import generate_private_key, key_id, load_private_key

    path = config.releases.private_key
    if path is not None:
        key = load_private_key(path)
        return key, f"{path} (key {key_id(key.public_key())})"
    key = generate_private_key()
    return key, (
        f"a one-off key {key_id(key.public_key())} ([releases] private_key not set; "
        "publishing re-signs with the fleet's release key)"
    )


def _finish(
    task: FineTuneTask,
    result: FineTuneResult,
    t: TrainingSection,
    spec: WindowSpec,
    norm: Normalization,
    key: Ed25519PrivateKey,
    signing: str,
    fleet_info: dict[str, Any],
    publish: Publisher | None,
) -> Decision:
    """Sign and write the candidate, decide, publish, and write the report."""
    device, w = task.device, task.windows
    device_dir = t.reports_dir / device
    version = next_version(task.deployed.version, used_versions(device_dir))
    out = device_dir / version
    bundle_dir = out / "bundle"
    if result.refused:
        verdict, reason = Verdict.NOT_PROMOTED, f"not promoted: {result.refused}"
    else:
        _write_candidate(task, result, version, bundle_dir, spec, norm, key, fleet_info)
        if result.deployed is None:
            verdict, reason = (
                Verdict.NOT_PROMOTED,
                (
                    "not promoted: the deployed model has another window length or horizons, "
                    "so the two cannot be compared on the same held-out windows"
                ),
            )
        else:
            ok, reason = compare(result.candidate_int8.mae, result.deployed.mae, t.margin)
            verdict = Verdict.PROMOTED if ok else Verdict.NOT_PROMOTED
    if verdict is Verdict.PROMOTED:
        where = (
            publish(device, version, bundle_dir, out)
            if publish is not None
            else f"not published ([releases] public_key not set); bundle left in {bundle_dir}"
        )
        reason = f"{reason}; {where}"
    decision = Decision(device, verdict, reason, version, out)
    write_report(
        out,
        ReportInputs(
            windows=w,
            result=result,
            deployed=task.deployed,
            decision=decision,
            margin=t.margin,
            pretrain=fleet_info,
            signing=signing,
            horizons=tuple(spec.horizons),
        ),
    )
    return decision


def _write_candidate(
    task: FineTuneTask,
    result: FineTuneResult,
    version: str,
    dest: Path,
    spec: WindowSpec,
    norm: Normalization,
    key: Ed25519PrivateKey,
    fleet_info: dict[str, Any],
) -> None:
    w = task.windows
    notes: dict[str, str | int | float] = {
        **settings_summary(task.settings),
        "fleet_pretrain": str(fleet_info.get("summary", "")),
        "final_train_loss": round(result.train_loss, 6),
        "deployed_at_training": f"{task.deployed.name} {task.deployed.version}",
        "heldout_mae_channel_units_int8": round(result.candidate_int8.mae, 6),
    }
    if result.deployed is not None:
        notes["heldout_mae_channel_units_deployed"] = round(result.deployed.mae, 6)
    manifest = build_manifest(
        model_bytes=result.model_bytes,
        release=Release(
            name=model_name(task.device),
            version=version,
            description=(
                f"Fleet forecaster fine-tuned on {task.device}'s synced summaries "
                f"({len(w.channels)} channel(s), {w.interval_s:g} s period)"
            ),
            channels=list(w.channels),
            sample_period_s=w.interval_s,
        ),
        spec=spec,
        norm=norm,
        training=TrainingSummary(
            dataset=f"cloud-sync summaries of {task.device}",
            series=len(w.channels),
            windows=len(w.train),
            epochs=result.epochs_run,
            notes=notes,
        ),
        metrics=result.evaluation.metrics,
        golden_inputs=golden_windows(w.held_out, norm, task.seed),
        private_key=key,
    )
    write_bundle(dest, result.model_bytes, manifest, key, force=True)
