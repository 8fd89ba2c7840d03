"""Faults: the shipped example config on the shipped simulator, scored per fault kind.

For each seed, ``edge-agent simulate`` plays the pump for a few simulated hours,
fast-forwarded (``--speed``, device timestamps), with one fault of every kind the
simulator has at seeded random times (bench/fault_plan.py), and ``edge-agent run`` reads
it over a real pty with examples/agent.toml, changed only where a bench run must be:
its data folder, the serial port (the simulator's link) and the device timestamp field,
the HTTP port, the webhook URL (a closed local port), the log level and the source's
reopen backoff (at most 1 s: the simulator is back within its fault's real time).
Link faults (dropout, garbage, vanish) are played in real time: the agent judges
silence on its own clock. The alarms are read from the agent's API afterwards and
scored against the fault windows the simulator's frames give:

- detected: an alarm raised between the fault's first sample and GRACE_S after its end;
- lead: the bearing crossing the bearing-hot level minus the first alarm, for overheat
  and drift (positive: warned before the limit);
- alarms per fault; time from the fault's end until its alarms cleared (not for wear
  and drift, which are permanent in the simulator);
- false alarms per device-day of fault-free time (alarms outside every fault window).

    python bench/faults.py --seeds 100-149 --jobs 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import REPO
from _procs import answers, child, cli
from fault_plan import (
    CLEAR_TARGET_S,
    LEAD_KINDS,
    PERMANENT,
    RATE_HZ,
    Plan,
    Raised,
    Score,
    Window,
    false_per_device_day,
    figures,
    plan,
    score,
)

from edge_agent.simulator import CHANNELS, parse_fault
from edgetwin_common.testing import free_port, wait_until

EXAMPLE = REPO / "examples" / "agent.toml"
GUARD_S = 120.0
END_GUARD_S = 30.0
"""Alarms raised this close to the end are the simulator stopping (the pty closes while
the agent is a moment behind): not scored. The plans end with 10 fault-free minutes."""


def seeds_argument(text: str) -> list[int]:
    """``N`` (seeds 0..N-1), ``A-B`` (A..B inclusive) or a comma list of those."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise argparse.ArgumentTypeError(f"--seeds {text!r}: {part!r} is not N or A-B")
        first, last = match.groups()
        if last is None:
            seeds += range(int(first))
        elif int(last) < int(first):
            raise argparse.ArgumentTypeError(f"--seeds {text!r}: {part!r} runs backwards")
        else:
            seeds += range(int(first), int(last) + 1)
    if not seeds:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: no seed (N counts from 0: 0-0 is seed 0)"
        )
    return seeds


def _set(text: str, table: str, key: str, value: str) -> str:
    """``key = value`` in the first ``[table]`` / ``[[table]]`` of ``text`` (it must be
    there: the bench changes only what it names)."""
    lines = text.splitlines()
    current = None
    for i, line in enumerate(lines):
        header = re.fullmatch(r"\s*\[\[?([^\]]+)\]\]?\s*(#.*)?", line)
        if header:
            if current == table:
                break
            current = header.group(1).strip()
            continue
        if current == table and re.match(rf"\s*{re.escape(key)}\s*=", line):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    raise SystemExit(f"{EXAMPLE}: no {key} in [{table}]: the bench cannot rewrite it")


def bench_config(workdir: Path, link: Path, http_port: int) -> str:
    """examples/agent.toml with only what a bench run must change."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = _set(text, "agent", "data_dir", f'"{workdir / "agent"}"')
    text = _set(text, "agent", "log_level", '"warning"')
    text = _set(text, "sources", "port", f'"{link}"')
    fields = ", ".join(f'"{f}"' for f in ("ts", *CHANNELS))
    text = _set(text, "sources", "csv_fields", f'[{fields}]\ntimestamp_field = "ts"')
    text = _set(text, "sources", "backoff", "{ initial_s = 0.2, max_s = 1.0 }")
    text = _set(text, "actions", "url", f'"http://127.0.0.1:{free_port()}/alarms"')
    return _set(text, "http", "port", str(http_port))


def _levels() -> tuple[float, float]:
    rules = {r["name"]: r for r in tomllib.loads(EXAMPLE.read_text("utf-8"))["alarms"]}
    return float(rules["bearing-hot"]["set"]), float(rules["vibration-high"]["set"])


@dataclass
class Run:
    plan: Plan
    score: Score
    wall_s: float
    dropped_lines: int
    """Lines the simulator could not write (the agent more than a second behind)."""
    queue_full: int
    """Readings the agent's source dropped because its pipeline was behind."""
    outside: int
    """Alarms raised before sample 0 or after the run's end (the agent starting before
    the simulator, the simulator stopping): not scored."""


def run_seed(seed: int, speed: float, workdir: Path) -> Run:
    hot, vibration_high = _levels()
    return run_plan(plan(seed, hot, vibration_high), speed, workdir)


def run_plan(the_plan: Plan, speed: float, workdir: Path) -> Run:
    """The simulator with the plan's faults read by the agent, its alarms scored."""
    seed = the_plan.seed
    workdir.mkdir(parents=True, exist_ok=True)
    link, port = workdir / "pump0", free_port()
    config = workdir / "agent.toml"
    config.write_text(bench_config(workdir, link, port), encoding="utf-8")
    t0 = time.monotonic()
    with child(cli("edge_agent", "run", "--config", str(config)), workdir / "agent.log") as agent:
        wait_until(lambda: answers(port), f"seed {seed}: agent /ready", timeout_s=GUARD_S)
        # Sample 0 that long ago: the fast-forwarded timestamps never run ahead of the clock.
        epoch = time.time() - the_plan.duration_s - 5.0
        argv = cli("edge_agent", "simulate", "--rate", f"{RATE_HZ:g}", "--seed", str(seed))
        argv += ["--link", str(link), "--timestamps", "--speed", f"{speed:g}"]
        argv += ["--duration", f"{the_plan.duration_s:.1f}", "--epoch", f"{epoch:.3f}"]
        argv += ["--link-faults-real-time"]
        for fault in the_plan.faults:
            argv += ["--fault", str(fault)]
        with child(argv, workdir / "simulator.log") as sim:
            while sim.poll() is None:
                if agent.poll() is not None:
                    raise RuntimeError(f"seed {seed}: agent exited, see {workdir / 'agent.log'}")
                time.sleep(0.5)
        time.sleep(1.0)  # the last readings through the pipeline
        listed = httpx.get(f"http://127.0.0.1:{port}/alarms", params={"limit": 10000}, timeout=30)
        listed.raise_for_status()
        state = httpx.get(f"http://127.0.0.1:{port}/status", timeout=30).json()
    queue_full = sum(s["counters"].get("readings_dropped_queue_full", 0) for s in state["sources"])
    alarms, outside = _raised(listed.json(), epoch, the_plan.duration_s)
    return Run(
        the_plan,
        score(the_plan.windows, alarms, the_plan.duration_s),
        time.monotonic() - t0,
        _dropped(workdir / "simulator.log"),
        queue_full,
        outside,
    )


def _raised(
    listed: list[dict[str, Any]], epoch: float, duration_s: float
) -> tuple[list[Raised], int]:
    alarms, outside = [], 0
    for a in listed:
        raised = a["raised_at"] - epoch
        if not 0.0 <= raised < duration_s - END_GUARD_S:
            outside += 1
            continue
        cleared = None if a["cleared_at"] is None else a["cleared_at"] - epoch
        alarms.append(Raised(a["rule"], a["channel"], raised, cleared))
    return alarms, outside


def load_runs(path: Path) -> list[Run]:
    """The runs a bench run saved (runs.jsonl), scored again (with this code's rules)."""
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        duration = row["hours"] * 3600
        windows, alarms = [], []
        for j in row["judged"]:
            fault = parse_fault(j["fault"])
            first = fault.first_sample(RATE_HZ) / RATE_HZ
            end = fault.end_sample(RATE_HZ)
            own = [Raised(**a) for a in j["alarms"]]
            crossing = None
            if j["lead_s"] is not None:
                crossing = j["lead_s"] + min(a.raised_s for a in own)
            permanent = fault.kind in PERMANENT or end is None
            windows.append(Window(fault, first, None if permanent else end / RATE_HZ, crossing))
            alarms += own
        alarms += [Raised(**a) for a in row["false"]]
        kept = [a for a in alarms if a.raised_s < duration - END_GUARD_S]
        the_plan = Plan(row["seed"], tuple(windows), duration)
        runs.append(
            Run(
                the_plan,
                score(the_plan.windows, kept, duration),
                0.0,
                row["dropped"],
                row["queue_full"],
                len(alarms) - len(kept),
            )
        )
    return runs


def _save(run: Run, path: Path) -> None:
    judged = [
        {
            "fault": str(j.window.fault),
            "alarms": [asdict(a) for a in j.alarms],
            "lead_s": j.lead_s,
            "clear_s": j.clear_s,
        }
        for j in run.score.judged
    ]
    false = [asdict(a) for a in run.score.false_alarms]
    row = {
        "seed": run.plan.seed,
        "hours": run.plan.duration_s / 3600,
        "judged": judged,
        "false": false,
        "queue_full": run.queue_full,
        "dropped": run.dropped_lines,
    }
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def _dropped(log: Path) -> int:
    match = re.search(r"(\d+) dropped \(nobody reading\)", log.read_text(errors="replace"))
    return int(match.group(1)) if match else -1


def _fmt(value: float | None, unit: str = "", scale: float = 1.0) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "never"
    return f"{value / scale:.1f}{unit}"


def report(runs: list[Run], seeds: list[int], speed: float, verbose: bool) -> None:
    scores = [r.score for r in runs]
    hours = sum(s.duration_s for s in scores) / 3600
    print(
        f"\nfaults: {len(runs)} seeds ({_seed_text(seeds)}), {hours:.1f} simulated hours at "
        f"{speed:g}x (link faults in real time), examples/agent.toml"
    )
    if verbose:
        for r in runs:
            _print_run(r)
    head = (
        f"{'kind':<9} {'faults':>6} {'detected':>9} {'lead med':>9} {'alarms med':>10} "
        f"{'max':>4} {'clear<=2min':>12} {'clear med':>10}"
    )
    print(head)
    print("-" * len(head))
    rows = figures(scores)
    for f in rows:
        lead = _fmt(f.lead_median_s, " min", 60) if f.kind in {k.value for k in LEAD_KINDS} else ""
        clear = f"{f.cleared_in_time}/{f.clearable}" if f.clearable else "permanent"
        print(
            f"{f.kind:<9} {f.faults:>6} {f.detected / f.faults:>9.1%} {lead:>9} "
            f"{_fmt(f.alarms_median):>10} {f.alarms_max:>4} {clear:>12} "
            f"{_fmt(f.clear_median_s, ' s'):>10}"
        )
    total = rows[-1]
    false = sum(len(s.false_alarms) for s in scores)
    per_day = false_per_device_day(scores)
    leads = {f.kind: f.lead_median_s for f in rows}
    print()
    print(
        f"detected {total.detected}/{total.faults} = {total.detected / total.faults:.1%} "
        f"(target >= 95 %)"
    )
    print(
        f"false alarms {false} in {sum(s.outside_s for s in scores) / 86400:.2f} fault-free "
        f"device-days = {per_day:.2f} per device-day (target <= 1)"
    )
    for kind in LEAD_KINDS:
        print(
            f"median lead {kind.value}: {_fmt(leads.get(kind.value), ' min', 60)} "
            "(target >= 10 min)"
        )
    print(f"median alarms per fault {_fmt(total.alarms_median)} (target 1)")
    print(
        f"cleared within {CLEAR_TARGET_S:g} s of the fault's end: {total.cleared_in_time}/"
        f"{total.clearable} (target: all)"
    )
    dropped = sum(max(0, r.dropped_lines) for r in runs)
    queue_full = sum(r.queue_full for r in runs)
    print(
        f"readings lost to fast-forward: {dropped} lines the simulator dropped, {queue_full} "
        "readings the agent's source dropped (its pipeline behind)"
    )
    print(
        f"alarms outside the runs' "
        f"time (agent start/stop, not scored): {sum(r.outside for r in runs)}; "
        + (
            f"wall per run {min(r.wall_s for r in runs):.0f}-{max(r.wall_s for r in runs):.0f} s"
            if any(r.wall_s for r in runs)
            else ""
        )
    )
    _print_clear_by_rule(scores)
    if false:
        kinds: dict[str, int] = {}
        for s in scores:
            for a in s.false_alarms:
                kinds[f"{a.rule}/{a.channel}"] = kinds.get(f"{a.rule}/{a.channel}", 0) + 1
        print(
            "false alarms by rule/channel:", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        )


def _print_clear_by_rule(scores: list[Score]) -> None:
    """Per fault kind and rule: how long after the fault's end its alarms cleared."""
    found: dict[tuple[str, str], list[float]] = {}
    for s in scores:
        for j in s.judged:
            if j.window.end_s is None:
                continue
            for a in j.alarms:
                after = math.inf if a.cleared_s is None else a.cleared_s - j.window.end_s
                found.setdefault((j.window.kind.value, a.rule), []).append(max(0.0, after))
    parts = []
    for (kind, rule), after in sorted(found.items()):
        in_time = sum(t <= CLEAR_TARGET_S for t in after)
        parts.append(
            f"{kind}/{rule} {in_time}/{len(after)} (median {statistics.median(after):.0f} s)"
        )
    print("cleared within 2 min, by fault and rule: " + "; ".join(parts))


def _print_run(r: Run) -> None:
    print(f"seed {r.plan.seed}: {r.plan.duration_s / 3600:.2f} h, {r.wall_s:.0f} s wall")
    for j in r.score.judged:
        names = ", ".join(f"{a.rule}/{a.channel}@{a.raised_s:.0f}" for a in j.alarms) or "MISSED"
        print(
            f"  {j.window.fault!s:<52} lead {_fmt(j.lead_s, ' s')} clear "
            f"{_fmt(j.clear_s, ' s')}: {names}"
        )
    for a in r.score.false_alarms:
        print(f"  FALSE {a.rule}/{a.channel} at {a.raised_s:.0f} s, cleared {_fmt(a.cleared_s)}")


def _seed_text(seeds: list[int]) -> str:
    return (
        f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else str(seeds)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds",
        type=seeds_argument,
        default=seeds_argument("50"),
        help="N (0..N-1), A-B, or a comma list (default 50)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=200.0,
        help="simulated s per wall s; speed x jobs beyond what the cores carry makes the "
        "agent drop readings (reported): 150 x 4-7 did on a busy 2-core machine",
    )
    parser.add_argument("--jobs", type=int, default=3, help="seeds run at once")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--verbose", "-v", action="store_true", help="every fault's alarms")
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="+",
        metavar="JSONL",
        help="score saved runs.jsonl files (a seed in several: its first run)",
    )
    parser.add_argument(
        "--fault-free", type=float, metavar="HOURS", help="no faults: HOURS simulated per seed"
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.report_from:
        found: dict[int, Run] = {}
        for path in args.report_from:
            if not path.is_file():
                raise SystemExit(f"--report-from: {path} is not a file")
            for run in load_runs(path):
                found.setdefault(run.plan.seed, run)
        runs = [found[seed] for seed in sorted(found)]
        report(runs, sorted(r.plan.seed for r in runs), args.speed, args.verbose)
        return

    def one(seed: int, base: Path) -> Run:
        if args.fault_free:
            run = run_plan(Plan(seed, (), args.fault_free * 3600), args.speed, base / f"{seed}")
        else:
            run = run_seed(seed, args.speed, base / f"seed-{seed}")
        _save(run, base / "runs.jsonl")  # as each finishes: a long run can be looked into
        return run

    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        base = args.keep or Path(tmp)
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(lambda s: one(s, base), args.seeds))
    if args.fault_free:
        report_fault_free(runs, args.speed)
    else:
        report(runs, args.seeds, args.speed, args.verbose)


def report_fault_free(runs: list[Run], speed: float) -> None:
    hours = sum(r.plan.duration_s for r in runs) / 3600
    seeds = ", ".join(str(r.plan.seed) for r in runs)
    alarms = [(r.plan.seed, a) for r in runs for a in r.score.false_alarms]
    print(
        f"\nfault-free: seeds {seeds}, {hours:.1f} simulated hours at {speed:g}x, "
        f"examples/agent.toml: {len(alarms)} alarm(s) (target 0)"
    )
    for seed, a in alarms:
        print(
            f"  seed {seed}: {a.rule}/{a.channel} at {a.raised_s:.0f} s, "
            f"cleared {_fmt(a.cleared_s)}"
        )
    lost = sum(max(0, r.dropped_lines) + r.queue_full for r in runs)
    print(
        f"readings lost to fast-forward: {lost}; alarms outside the runs' time (agent "
        f"start/stop, not scored): {sum(r.outside for r in runs)}"
    )


if __name__ == "__main__":
    main()
