"""The report saved with each twin candidate: ``report.md`` and ``decision.json`` in
``<reports_dir>/<device>/twins/<version>/`` (the signed bundle in ``bundle/``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloud_sync.training.decision import Decision
from cloud_sync.training.report import DECISION_FILE, REPORT_FILE, write_decision
from cloud_sync.training.twin_data import TwinData
from cloud_sync.training.twin_task import RunningTwin, TwinResult, WhatIfScores
from edgetwin_common.durations import duration_text


@dataclass(frozen=True, slots=True)
class TwinReport:
    data: TwinData
    result: TwinResult
    running: RunningTwin
    decision: Decision
    margin: float
    fleet: dict[str, Any]
    signing: str


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _mark(steps: int, period_s: float) -> str:
    return "1 step" if steps == 1 else duration_text(steps * period_s)


def write_twin_report(out: Path, r: TwinReport) -> None:
    """Write report.md and decision.json into ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    d, res, data = r.decision, r.result, r.data
    period = data.period_s
    marks = res.candidate.marks
    rows: list[tuple[str, WhatIfScores | None]] = [
        (f"running {r.running.name} {r.running.version}", res.running),
        ("fleet twin (int8)", res.fleet),
        (f"candidate {d.version} (int8)", res.candidate),
    ]
    head = " | ".join(_mark(m, period) for m in marks)
    lines = [
        f"# Twin retrain of {data.device}: candidate {d.version}",
        "",
        f"**Decision: {d.verdict.value}** — {d.reason}",
        "",
        "## What-if error on the held-out data",
        "",
        f"From {res.candidate.starts} start points in the device's most recent periods, "
        "each model (int8, the device's `TwinModel`) is rolled forward under the controls "
        "the device actually had and compared with what its channels did.",
        "",
        "### Normalized (mean over channels of MAE / the channel's scale)",
        "",
        f"| model | {head} |",
        "|---|" + "---|" * len(marks),
    ]
    for label, s in rows:
        cells = (
            " | ".join(f"{v:.4g}" for v in s.normalized) if s else " | ".join("n/a" for _ in marks)
        )
        lines.append(f"| {label} | {cells} |")
    lines += [
        "",
        f"Promotion rule: the mean over these horizons of candidate / running <= 1 - {r.margin:g}, "
        "and no horizon worse than the running twin's.",
        f"Running twin from: {r.running.source}."
        + (f" {r.running.note}" if r.running.note else ""),
        "",
        "### Per channel (MAE, channel units)",
        "",
        f"| channel | model | {head} |",
        "|---|---|" + "---|" * len(marks),
    ]
    for channel in res.candidate.mae[0]:
        for label, s in rows:
            if s is None:
                continue
            cells = " | ".join(f"{s.mae[i][channel]:.4g}" for i in range(len(marks)))
            lines.append(f"| {channel} | {label} | {cells} |")
    lines += [
        "",
        "## Data and training",
        "",
        "| | |",
        "|---|---|",
        f"| data span | {_when(data.span[0])} to {_when(data.span[1])} |",
        f"| period | {period:g} s |",
        f"| channels | {', '.join(data.channels)} |",
        f"| complete periods | {data.periods} ({data.gaps} gap(s)) |",
        f"| training periods | {data.train_periods} in {len(data.train)} run(s): "
        f"{res.pieces} series, {res.samples} samples |",
        f"| held-out periods | {data.held_out_periods} in {len(data.held_out)} run(s) |",
        f"| fleet twin | {r.fleet.get('summary', 'n/a')} |",
        f"| fine-tune epochs run | {res.epochs_run} (final loss {res.train_loss:.4f}"
        + (f", best validation {res.val_loss:.4f})" if res.val_loss is not None else ")")
        + " |",
        f"| int8 model | {len(res.model_bytes)} bytes |",
        f"| worker time | {res.seconds:.1f} s |",
        f"| signed with | {r.signing} |",
    ]
    for note in [*data.notes, *res.notes]:
        lines.append(f"| data note | {note} |")
    (out / REPORT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_decision(out / DECISION_FILE, twin_decision_record(r))


def twin_decision_record(r: TwinReport) -> dict[str, Any]:
    res = r.result

    def scores(s: WhatIfScores | None) -> dict[str, Any] | None:
        if s is None:
            return None
        return {"marks": s.marks, "mae": s.mae, "normalized": s.normalized, "starts": s.starts}

    return {
        "device": r.decision.device,
        "kind": "twin",
        "verdict": r.decision.verdict.value,
        "reason": r.decision.reason,
        "version": r.decision.version,
        "margin": r.margin,
        "period_s": r.data.period_s,
        "running": {
            "name": r.running.name,
            "version": r.running.version,
            "source": r.running.source,
            "note": r.running.note,
            "scores": scores(res.running),
        },
        "fleet": scores(res.fleet),
        "candidate": scores(res.candidate),
        "data": {
            "periods": r.data.periods,
            "train_periods": r.data.train_periods,
            "held_out_periods": r.data.held_out_periods,
            "gaps": r.data.gaps,
            "notes": [*r.data.notes, *res.notes],
            "span": list(r.data.span),
        },
        "epochs_run": res.epochs_run,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
