"""The training report saved with each candidate: ``report.md``, ``forecast.png``,
``decision.json`` in ``<reports_dir>/<device>/<version>/`` (the bundle in ``bundle/``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cloud_sync.training.dataset import DeviceWindows
from cloud_sync.training.decision import Decision
from cloud_sync.training.task import DeployedModel, FineTuneResult, Scores
from edgetwin_common.durations import duration_text

REPORT_FILE = "report.md"
PLOT_FILE = "forecast.png"
DECISION_FILE = "decision.json"
MAX_PLOT_CHANNELS = 4


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """What one device's report shows."""

    windows: DeviceWindows
    result: FineTuneResult
    deployed: DeployedModel
    decision: Decision
    margin: float
    pretrain: dict[str, Any]
    signing: str
    horizons: tuple[int, ...] = ()
    """The candidate's horizons, steps of ``windows.interval_s`` (the per-horizon table)."""


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _row(label: str, s: Scores | None) -> str:
    if s is None:
        return f"| {label} | n/a | n/a |"
    return f"| {label} | {s.mae_h1:.6g} | {s.mae:.6g} |"


def write_report(out: Path, r: ReportInputs) -> None:
    """Write report.md, forecast.png and decision.json into ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    write_plot(out / PLOT_FILE, r)
    w, res, d = r.windows, r.result, r.decision
    lines = [
        f"# Retrain of {w.device}: candidate {d.version}",
        "",
        f"**Decision: {d.verdict.value}** — {d.reason}",
        "",
        "## Held-out MAE (channel units, all channels)",
        "",
        "| model | horizon 1 | all horizons (mean) |",
        "|---|---|---|",
        _row(f"deployed {r.deployed.name} {r.deployed.version} (int8)", res.deployed),
        _row("candidate float32 (Keras)", res.candidate_float),
        _row(f"candidate {d.version} int8 (device Forecaster)", res.candidate_int8),
        _row("naive last value", res.naive),
        "",
        f"Promotion rule: candidate int8 all-horizon MAE <= deployed x (1 - {r.margin:g}).",
        f"Deployed model from: {r.deployed.source}."
        + (f" {r.deployed.note}" if r.deployed.note else ""),
        "",
        *_horizon_table(r),
        "### Per channel (all-horizon MAE)",
        "",
        "| channel | deployed | candidate int8 |",
        "|---|---|---|",
    ]
    for name, value in res.candidate_int8.mae_by_channel.items():
        dep = res.deployed.mae_by_channel.get(name) if res.deployed else None
        lines.append(f"| {name} | {'n/a' if dep is None else f'{dep:.6g}'} | {value:.6g} |")
    m = res.evaluation.metrics
    lines += [
        "",
        "### Float32 vs int8 (window-std units, as in the manifest)",
        "",
        f"float32 MAE {m.float32.mae:.4f}, int8 MAE {m.int8.mae:.4f} "
        f"({m.int8_mae_increase:+.2%}) on {m.windows} held-out windows.",
        *([f"Conversion refused: {res.refused}"] if res.refused else []),
        "",
        "## Data and training",
        "",
        "| | |",
        "|---|---|",
        f"| data span | {_when(w.span[0])} to {_when(w.span[1])} |",
        f"| sample period | {w.interval_s:g} s (the summary interval) |",
        f"| summaries used | {w.summaries} |",
        f"| channels | {', '.join(w.channels)} |",
        f"| training windows | {len(w.train)} |",
        f"| held-out windows | {len(w.held_out)} |",
        f"| fleet pretrain | {r.pretrain.get('summary', 'n/a')} |",
        f"| fine-tune epochs run | {res.epochs_run} (final loss {res.train_loss:.4f}"
        + (f", best validation {res.val_loss:.4f})" if res.val_loss is not None else ")")
        + " |",
        "| fine-tune start | "
        + ", ".join(
            f"{'**' + k + '**' if k == res.start else k} (validation {v:.4f})"
            for k, v in res.start_val_losses.items()
        )
        + " |",
        f"| int8 model | {len(res.model_bytes)} bytes, {res.representative} calibration windows |",
        f"| worker time | {res.seconds:.1f} s |",
        f"| signed with | {r.signing} |",
    ]
    for name, why in w.skipped_channels.items():
        lines.append(f"| channel {name} left out | {why} |")
    lines += ["", f"![one-step forecasts on the held-out window]({PLOT_FILE})", ""]
    (out / REPORT_FILE).write_text("\n".join(lines), encoding="utf-8")
    write_decision(out / DECISION_FILE, decision_record(r))


def _horizon_table(r: ReportInputs) -> list[str]:
    """Held-out MAE per horizon, each horizon in steps and in time: what the device's
    live guard measures at the same horizons (it feeds the model the same period means)."""
    res = r.result
    if not r.horizons or len(r.horizons) != len(res.candidate_int8.mae_by_horizon):
        return []
    lines = [
        "### Per horizon (the device's live guard judges each)",
        "",
        "| horizon | deployed | candidate int8 |",
        "|---|---|---|",
    ]
    deployed = res.deployed.mae_by_horizon if res.deployed else []
    for i, h in enumerate(r.horizons):
        dep = f"{deployed[i]:.6g}" if i < len(deployed) else "n/a"
        when = duration_text(h * r.windows.interval_s)
        lines.append(f"| {h} ({when}) | {dep} | {res.candidate_int8.mae_by_horizon[i]:.6g} |")
    return [*lines, ""]


def decision_record(r: ReportInputs) -> dict[str, Any]:
    res = r.result

    def scores(s: Scores | None) -> dict[str, Any] | None:
        if s is None:
            return None
        return {
            "mae_h1": s.mae_h1,
            "mae": s.mae,
            "mae_by_channel": s.mae_by_channel,
            "mae_by_horizon": s.mae_by_horizon,
        }

    return {
        "device": r.decision.device,
        "verdict": r.decision.verdict.value,
        "reason": r.decision.reason,
        "version": r.decision.version,
        "margin": r.margin,
        "deployed": {
            "name": r.deployed.name,
            "version": r.deployed.version,
            "source": r.deployed.source,
            "note": r.deployed.note,
            "scores": scores(res.deployed),
        },
        "candidate": {
            "int8": scores(res.candidate_int8),
            "float32": scores(res.candidate_float),
            "naive": scores(res.naive),
            "refused": res.refused or None,
        },
        "windows": {"train": len(r.windows.train), "held_out": len(r.windows.held_out)},
        "epochs_run": res.epochs_run,
        "start": res.start,
        "start_val_losses": res.start_val_losses,
        "span": list(r.windows.span),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_decision(path: Path, record: dict[str, Any]) -> None:
    """decision.json, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_plot(path: Path, r: ReportInputs) -> None:
    """Actual vs deployed vs candidate one-step forecasts over the held-out window, one
    panel per channel (the first MAX_PLOT_CHANNELS)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    w, one = r.windows, r.result.one_step
    shown = [i for i in range(len(w.channels)) if np.any(w.held_out_channel == i)]
    shown = shown[:MAX_PLOT_CHANNELS]
    fig = Figure(figsize=(10, 2.6 * max(1, len(shown))), layout="constrained")
    axes = fig.subplots(max(1, len(shown)), 1, squeeze=False)[:, 0]
    for ax, index in zip(axes, shown, strict=False):
        rows = w.held_out_channel == index
        t = (w.held_out_ts[rows] - w.held_out_ts[rows][0]) / 3600.0
        ax.plot(t, one["actual"][rows], color="black", lw=1.2, label="actual")
        if np.any(np.isfinite(one["deployed"][rows])):
            ax.plot(t, one["deployed"][rows], lw=0.9, label=f"deployed {r.deployed.version}")
        ax.plot(t, one["candidate"][rows], lw=0.9, label=f"candidate {r.decision.version}")
        ax.set_title(f"{w.device} / {w.channels[index]}: one-step forecasts, held out", fontsize=9)
        ax.set_xlabel(f"hours since {_when(float(w.held_out_ts[rows][0]))}")
        ax.legend(fontsize=7, loc="upper right")
    fig.savefig(path, dpi=90)
