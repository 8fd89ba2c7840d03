"""NAB on the product's own code path: each series is one device.

    python bench/nab.py --data ../shared/data/nab/data \\
        --labels ../shared/data/nab/labels/combined_windows.json --out out/nab

The causal protocol, per series (``<category>/<file>.csv`` under --data):

1. The device starts on the shipped default model. Its probationary period (NAB's: the
   first 15 % of the rows, at most 750) is replayed through a real `edge-agent run`
   that syncs its interval summaries (one per reading) to a real `cloud-sync serve`.
2. `cloud-sync retrain --device` fine-tunes a model for that device from those
   summaries and nothing else (its own reports folder, so no other device's data and
   no earlier fleet model enter it), converts it to int8 and decides whether to
   promote it, as for any device.
3. The whole series is replayed through `edge-agent replay` (the pipeline `run` uses);
   a promoted model is taken at the first row after the probationary period the way
   the device takes an OTA release (verified, swapped between two samples, guarded,
   rolled back if worse). The replay writes the NAB result file
   ``<out>/<category>/<file>.csv`` (``timestamp,value,anomaly_score``).
4. The result files are scored (bench/nab_scoring.py) under NAB's three profiles, with
   NAB's corpus-optimized threshold and with the detector's fixed threshold (its
   `hold_level`: the `set` of its score_above rule), over all files and per category.
   The detector is ``nab_grid.NAB_SCORE`` (method "ensemble").
5. Leave-one-category-out (bench/nab_loco.py): the threshold, then the threshold and a
   detector setting of a small declared grid (bench/nab_grid.py, re-scored offline from
   the replays' kept forecasts, ``<out>/settings/<setting>/``), chosen on all categories
   but one and scored on that one, for each in turn: the figure for unseen machines.

``--score-only`` scores existing result files; ``--models DIR`` keeps the fine-tuned
bundles there and reuses them on the next run (steps 1-2 skipped for those devices);
``--no-grid`` skips the settings grid (leave-one-category-out over the threshold only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import KERAS_REFERENCE
from closed_loop import (
    PY,
    agent_toml,
    free_port,
    period_s,
    sync_into_cloud,
    wait_http,
    write_cloud_toml,
)
from nab_grid import NAB_SCORE, SHIPPED, write_settings
from nab_loco import Corpus, best_setting, leave_one_category_out, per_category
from nab_scoring import (
    PROFILES,
    LabelledSeries,
    ProfileResult,
    label_series,
    probation_rows,
    score_corpus,
)

from edgetwin_common.timestamps import parse_timestamp

REPO = Path(__file__).resolve().parent.parent
FORECASTS = "forecasts"
"""Under --out: the replays' per-sample results, in the same <category>/<file>.csv layout."""


def shipped_score() -> dict[str, Any]:
    """The detector the NAB bench runs: ``nab_grid.NAB_SCORE`` (method "ensemble", the
    settings chosen by leave-one-category-out, docs/anomaly-quality.md)."""
    return dict(NAB_SCORE)


def shipped_score_toml() -> str:
    """The detector's [score] table as TOML for the replays' agent config: NAB's
    "value" channel is not named there."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in shipped_score().items()]
    return "\n[channel_defaults.score]\n" + "\n".join(lines) + "\n"


def shipped_threshold() -> float:
    """The shipped fixed detection level: the detector's `hold_level` (-log10 of a
    probability per step: 3 is a 1-in-1,000 surprise), the `set` its score_above rule
    gets (docs/anomaly-quality.md, "The fixed threshold")."""
    return float(shipped_score()["hold_level"])


@dataclass(slots=True)
class Device:
    key: str  # "<category>/<file>.csv", as in the labels
    path: Path
    name: str
    period: float
    rows: int
    probation: int
    update_at: str  # timestamp of the first row after the probationary period
    bundle: Path | None = None
    decision: str = ""
    update: str = ""


def discover(data: Path) -> list[Device]:
    devices = []
    for path in sorted(data.glob("*/*.csv")):
        lines = path.read_text().splitlines()
        rows = len(lines) - 1
        probation = probation_rows(rows)
        name = path.stem.replace("_", "-")[:40]
        update_at = lines[1 + probation].split(",")[0]
        key = f"{path.parent.name}/{path.name}"
        devices.append(Device(key, path, name, period_s(path), rows, probation, update_at))
    if not devices:
        raise SystemExit(f"no <category>/<file>.csv under {data}")
    return devices


def head_rows(path: Path, rows: int, out: Path) -> None:
    lines = path.read_text().splitlines()
    out.write_text("\n".join(lines[: 1 + rows]) + "\n")


def fine_tune(devices: list[Device], tmp: Path, models: Path, workers: int) -> None:
    """Steps 1-2 for the devices without a cached model: sync the probationary period,
    retrain each device alone, keep the promoted bundles under ``models``."""
    todo = [d for d in devices if not (models / d.name / "decision.json").exists()]
    if todo:
        _fine_tune(todo, tmp, models, workers)
    for d in devices:
        decision = json.loads((models / d.name / "decision.json").read_text())
        d.decision = decision.get("verdict") or decision.get("reason", "")
        bundle = models / d.name / "bundle"
        if decision.get("verdict") == "promoted" and bundle.is_dir():
            d.bundle = bundle


def _fine_tune(devices: list[Device], tmp: Path, models: Path, workers: int) -> None:
    env = {**os.environ, "PATH": f"{Path(PY).parent}:{os.environ['PATH']}"}
    keys = models / "keys"
    if not (keys / "release.pub").exists():
        subprocess.run(
            ["model-export", "keygen", "--out-dir", str(keys)],
            check=True,
            capture_output=True,
            env=env,
        )
    admin = secrets.token_urlsafe(24)

    def cloud_toml(reports: Path) -> Path:
        training = f'n_workers = {workers}\nreports_dir = "{reports}"'
        path = tmp / f"cloud-{reports.name}.toml"
        return write_cloud_toml(path, tmp / "cloud.db", admin, keys, training)

    shared = cloud_toml(tmp / "reports-cloud")
    port = free_port()
    cloud = subprocess.Popen(
        [
            PY,
            "-m",
            "cloud_sync",
            "serve",
            "--config",
            str(shared),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health")
        for d in devices:
            token = subprocess.run(
                [PY, "-m", "cloud_sync", "devices", "add", d.name, "--config", str(shared)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
            head = tmp / f"{d.name}-probation.csv"
            head_rows(d.path, d.probation, head)
            batches = sync_into_cloud(tmp, d.name, head, d.period, url, token)
            print(f"{d.name}: {d.probation} probationary rows synced in {batches} batches")
    finally:
        cloud.send_signal(signal.SIGTERM)
        cloud.wait(60)
    for d in devices:
        # Its own reports folder, whose "fleet" model is the shipped default's float
        # reference as it is: the fine-tune starts from what the device runs and sees
        # this device's summaries only (a fleet pretrain would mix in other devices).
        reports = tmp / f"reports-{d.name}"
        fleet = reports / "fleet"
        fleet.mkdir(parents=True)
        shutil.copy(KERAS_REFERENCE, fleet / "fleet.keras")
        (fleet / "fleet.json").write_text(
            json.dumps({"summary": "the shipped default's reference, not pretrained"})
        )
        config = cloud_toml(reports)
        start = time.monotonic()
        done = subprocess.run(
            [
                PY,
                "-m",
                "cloud_sync",
                "retrain",
                "--device",
                d.name,
                "--config",
                str(config),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        print(
            f"{d.name}: retrain exit {done.returncode} in {time.monotonic() - start:.0f} s: "
            f"{done.stdout.strip()}"
        )
        target = models / d.name
        target.mkdir(parents=True, exist_ok=True)
        decisions = sorted((reports / d.name).glob("*/decision.json"))
        if decisions:
            shutil.copy(decisions[-1], target / "decision.json")
            if (decisions[-1].parent / "bundle").is_dir():
                shutil.copytree(decisions[-1].parent / "bundle", target / "bundle")
        else:
            skipped = reports / d.name / "skipped.json"
            why = (
                json.loads(skipped.read_text()).get("reason", "")
                if skipped.exists()
                else done.stderr.strip()[-300:]
            )
            (target / "decision.json").write_text(json.dumps({"reason": f"skipped: {why}"}))


def replay(devices: list[Device], tmp: Path, out: Path, models: Path, extra: str) -> None:
    """Step 3: every series through `edge-agent replay`, writing its NAB result file."""
    for d in devices:
        config = agent_toml(tmp, f"{d.name}-replay", d.path, d.period, extra)
        result = out / d.key
        result.parent.mkdir(parents=True, exist_ok=True)
        command = [PY, "-m", "edge_agent", "replay", "--config", str(config)]
        # The per-sample results (value and the forecast made for it) too: any other
        # detector setting re-scores them offline (bench/nab_grid.py), no new replay.
        forecasts = out / FORECASTS / d.key
        forecasts.parent.mkdir(parents=True, exist_ok=True)
        command += ["--csv", str(d.path), "--nab-out", str(result), "--out", str(forecasts)]
        if d.bundle is not None:
            command += ["--update-bundle", str(d.bundle), "--update-at", d.update_at]
            command += ["--update-key", str(models / "keys" / "release.pub")]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{d.name}: replay failed: {done.stderr.strip()[-500:]}")
        for line in done.stdout.splitlines():
            if line.startswith("model update: "):
                d.update = line.removeprefix("model update: ")


def load_results(data: Path, labels: Path, out: Path) -> list[tuple[LabelledSeries, list[float]]]:
    windows = json.loads(labels.read_text())
    corpus = []
    for path in sorted(data.glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        with path.open() as fh:
            stamps = [row[0] for row in list(csv.reader(fh))[1:]]
        with (out / key).open() as fh:
            rows = list(csv.reader(fh))[1:]
        scores = []
        j = 0
        for stamp in stamps:
            # A row whose time goes back is skipped by the device's reader (counted,
            # never scored): it gets no detection.
            if j < len(rows) and parse_timestamp(rows[j][0]) == parse_timestamp(stamp):
                scores.append(float(rows[j][2]))
                j += 1
            else:
                scores.append(0.0)
        if j != len(rows):
            raise SystemExit(f"{key}: result row {rows[j][0]} matches no data row in order")
        # Label timestamps carry microseconds; match them to the file's own spelling.
        by_time = {parse_timestamp(s): s for s in stamps}
        spans = [[by_time.get(parse_timestamp(t), t) for t in w] for w in windows.get(key, [])]
        corpus.append((label_series(key, stamps, spans), scores))
    return corpus


def report(
    corpus: list[tuple[LabelledSeries, list[float]]], periods: list[float], fixed: float
) -> None:
    print(f"\n{'profile':22s} {'optimized':>10s} {'at threshold':>13s} {'fixed':>8s}")
    results: dict[str, tuple[ProfileResult, ProfileResult]] = {}
    for profile in PROFILES:
        best = score_corpus(corpus, profile)
        at_fixed = score_corpus(corpus, profile, fixed)
        results[profile.name] = (best, at_fixed)
        print(f"{profile.name:22s} {best.score:10.1f} {best.threshold:13.4g} {at_fixed.score:8.1f}")
    best = results["standard"][0]
    print(
        f"(fixed threshold {fixed:g}: the detector's hold_level; "
        f"standard raw {best.raw:.2f}, null {best.null:.2f}, perfect {best.perfect:.2f})"
    )
    for label, index in (("optimized threshold", 0), ("fixed threshold", 1)):
        chosen = results["standard"][index]
        print(
            f"\nper series, standard profile, {label} {chosen.threshold:.4g}:\n"
            f"{'series':38s} {'windows':>7s} {'detected':>8s} {'missed':>6s} {'FP':>4s} "
            f"{'raw':>6s}  first detection: rows after the window start, of its width"
        )
        for series, (s, _), period in zip(chosen.series, corpus, periods, strict=True):
            widths = [last - first + 1 for first, last in s.windows if last >= s.probation]
            delays = ", ".join(
                f"miss (of {w})" if x is None else f"{x} of {w} rows ({x * period / 3600:.1f} h)"
                for x, w in zip(series.delays, widths, strict=True)
            )
            windows = series.detected + series.missed
            name = s.name.split("/")[-1].removesuffix(".csv")
            print(
                f"{name:38s} {windows:7d} {series.detected:8d} {series.missed:6d} "
                f"{series.false_positives:4d} {series.score:6.2f}  {delays}"
            )
        total_fp = sum(x.false_positives for x in chosen.series)
        total_det = sum(x.detected for x in chosen.series)
        total_miss = sum(x.missed for x in chosen.series)
        print(
            f"{'total':38s} {total_det + total_miss:7d} {total_det:8d} {total_miss:6d} "
            f"{total_fp:4d} {chosen.raw:6.2f}"
        )


def report_categories(corpus: Corpus, fixed: float) -> None:
    """Each category alone, per profile: at its own optimized threshold and at the fixed
    one."""
    print(f"\nper category: {'optimized on itself':>20s} / at the fixed threshold {fixed:g}")
    rows = {
        p.name: (per_category(corpus, p, None), per_category(corpus, p, fixed)) for p in PROFILES
    }
    names = list(next(iter(rows.values()))[0])
    print(f"{'profile':22s} " + " ".join(f"{n:>24s}" for n in names))
    for profile, (best, at_fixed) in rows.items():
        cells = " ".join(f"{best[n]:11.1f} / {at_fixed[n]:10.1f}" for n in names)
        print(f"{profile:22s} {cells}")


def report_loco(runs: dict[str, Corpus]) -> None:
    """Leave-one-category-out per profile: the threshold alone (shipped setting), then
    the settings of the grid and the threshold (when the grid was re-scored)."""
    choices = [("threshold only", {SHIPPED: runs[SHIPPED]})]
    if len(runs) > 1:
        choices.append((f"grid of {len(runs)} settings + threshold", runs))
    for label, candidates in choices:
        print(f"\nleave-one-category-out, {label}:")
        for profile in PROFILES:
            loco = leave_one_category_out(candidates, profile)
            folds = "; ".join(
                f"{f.held_out} {f.score:.1f} ({f.setting} at {f.threshold:.4g}, "
                f"{f.chosen_on:.1f} on the rest)"
                for f in loco.folds
            )
            print(f"  {profile.name:20s} mean {loco.mean:5.1f}: {folds}")
    if len(runs) > 1:
        print("\nbest single setting, threshold and setting both optimized on all files:")
        for profile in PROFILES:
            best = best_setting(runs, profile)
            print(
                f"  {profile.name:20s} {best.score:5.1f} ({best.setting} at {best.threshold:.4g})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    nab = REPO.parent / "shared" / "data" / "nab"
    parser.add_argument("--data", type=Path, default=nab / "data")
    parser.add_argument("--labels", type=Path, default=nab / "labels" / "combined_windows.json")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "nab")
    parser.add_argument("--models", type=Path, help="keep/reuse the fine-tuned bundles here")
    parser.add_argument("--score-only", action="store_true", help="score existing results")
    parser.add_argument(
        "--no-grid",
        action="store_true",
        help="leave-one-category-out over the threshold only (no detector settings grid)",
    )
    parser.add_argument("--workers", type=int, default=1, help="Dask workers of the retrain")
    parser.add_argument(
        "--agent", default="", help='extra agent TOML for the replays, lines split by ";"'
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not args.score_only:
        devices = discover(args.data)
        with tempfile.TemporaryDirectory(prefix="bench-nab-") as tmp_name:
            tmp = Path(tmp_name)
            models = args.models or tmp / "models"
            models.mkdir(parents=True, exist_ok=True)
            start = time.monotonic()
            fine_tune(devices, tmp, models, args.workers)
            print(f"fine-tuning: {time.monotonic() - start:.0f} s")
            start = time.monotonic()
            extra = shipped_score_toml() + args.agent.replace(";", "\n")
            replay(devices, tmp, args.out, models, extra)
            print(f"replays: {time.monotonic() - start:.0f} s")
        print(f"\n{'series (device)':42s} {'rows':>6s} {'probation':>9s}  model update")
        for d in devices:
            update = d.update or f"none (cloud: {d.decision})"
            print(f"{d.name:42s} {d.rows:6d} {d.probation:9d}  {update}")
    series = sorted(args.data.glob("*/*.csv"))
    periods = [period_s(path) for path in series]
    fixed = shipped_threshold()
    corpus = load_results(args.data, args.labels, args.out)
    report(corpus, periods, fixed)
    report_categories(corpus, fixed)
    runs: dict[str, Corpus] = {SHIPPED: corpus}
    if not args.no_grid and (args.out / FORECASTS).is_dir():
        keys = [f"{path.parent.name}/{path.name}" for path in series]
        update_rows = {
            key: probation_rows(len(path.read_text().splitlines()) - 1)
            for key, path in zip(keys, series, strict=True)
        }
        grid, agreement = write_settings(
            keys, args.out, args.out / FORECASTS, shipped_score(), fixed, update_rows
        )
        print(
            f"\ngrid re-scored offline from the replays' forecasts: {len(grid)} settings; "
            f"the shipped one reproduces the replays' scores within "
            f"{agreement.max_difference:.2g} ({agreement.flipped} of {agreement.rows} rows "
            f"on the other side of {fixed:g})"
        )
        for setting in grid[1:]:
            runs[setting.name] = load_results(
                args.data, args.labels, args.out / "settings" / setting.name
            )
    report_loco(runs)


if __name__ == "__main__":
    sys.exit(main())
