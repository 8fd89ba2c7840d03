"""The closed loop, fast-forwarded: a second pump whose sensor drifts, on the default model,
syncing to the cloud; the cloud retrains from what it synced, releases a model for it,
and the agent takes the update over the air while it keeps reading.

The simulator prints its own timestamps and runs ``SPEED`` times faster than the wall
clock (one reading per simulated ``SENSOR_PERIOD_S``), so hours of pump life fit in a
minute; the agent and the cloud work on those timestamps exactly as they would on live
ones. The sensor reads faster than the summary interval (``PERIOD_S``): the retrained
model learns the interval means and carries that period in its manifest, so the agent
feeds it the same means (docs/ota.md, "The model's period"), while value rules keep
seeing every reading.
Everything is the product's real path: pty + pyserial, the pipeline, the store, the
sync worker, `cloud-sync retrain --fleet` (fleet pretrain, fine-tune, int8, compare,
promote, sign, publish), the OTA manager (download, verify, self-test child, swap,
live guard on every horizon). The summary compares the forecast error of the default
and the new model on the same interval means after the update, at the horizons the
operator sees (in time), and lists the alarms.
"""

from __future__ import annotations

import asyncio
import csv
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.alarms.model import AlarmEvent, AlarmEventKind
from edge_agent.config import AgentConfig, LoadedConfig
from edge_agent.daemon.agent import Agent
from edge_agent.pipeline.backtest import run_backtest
from edge_agent.simulator import (
    PumpParams,
    SimulatorSettings,
    generate_series,
    parse_fault,
    run_simulator,
    serial_config_for,
)
from edge_agent.simulator.faults import CHANNELS
from edgetwin_common.durations import duration_text
from edgetwin_common.timestamps import parse_timestamp
from edgetwin_contracts.batch import ModelUpdateState
from edgetwin_demo.cloud import DemoCloud

DEVICE = "demo-pump-2"
PERIOD_S = 10.0
"""The summary interval: the retrained model's sample period (its means)."""
SENSOR_PERIOD_S = 2.0
"""One reading per simulated 2 s: five readings per summary interval."""
SPEED = 1000.0
"""Simulated seconds per wall second: 500 readings a second."""
HISTORY_S = 3 * 3600.0
"""Pump time synced before the retrain: 3 simulated hours."""
GUARD_SAMPLES = 400
"""Model steps (all four channels) the live guard compares both models on."""
AFTER_PERIODS = 480
"""Model periods per channel on the new model before the summary."""
PUMP = PumpParams(load_cycle_s=900.0, load_cycle_amplitude=0.2, load_wander=0.03)
"""A pump on a 15-minute fill-and-drain duty cycle: a pattern of its own to learn."""
DRIFT_AT_S = 7200.0
DRIFT_RATE = 0.04
"""°C per simulated minute of bearing-sensor calibration drift."""
LIMIT_ABOVE_BASE_C = 4.0
OFF_DELAY_S = 1800.0
"""An alarm clears only after 30 min below its clear level: the duty cycle dips under
the limit every 15 min while the drift goes on."""
WALL_LIMIT_S = 900.0
"""Upper bound on the loop's wall time; the simulated past starts this long x SPEED ago."""
UPDATE_TIMEOUT_S = 300.0
READINGS_CSV = "readings.csv"
_FINISHED = {ModelUpdateState.INSTALLED, ModelUpdateState.ROLLED_BACK, ModelUpdateState.REJECTED}


@dataclass(slots=True)
class LoopResult:
    retrain_exit: int | None = None
    update_state: str = "none"
    update_version: str | None = None
    update_reason: str | None = None
    swap_ts: float | None = None
    """Data time of the last reading before the swap."""
    readings: int = 0
    """Stored readings exported for the comparison (``<workdir>/readings.csv``)."""
    guard: tuple[int, float, float] | None = None
    events: list[AlarmEvent] = field(default_factory=list)


def loop_settings(link: Path) -> SimulatorSettings:
    return SimulatorSettings(
        rate_hz=1.0 / SENSOR_PERIOD_S,
        seed=11,
        link=link,
        timestamps=True,
        speed=SPEED,
        faults=(parse_fault(f"drift@{DRIFT_AT_S:g}s,channel=bearing_temp,rate={DRIFT_RATE}"),),
        params=PUMP,
    )


def bearing_limit(settings: SimulatorSettings) -> float:
    """A limit the drifting bearing sensor crosses within the run: the first hour's
    highest reading plus a margin."""
    history = generate_series(settings, DRIFT_AT_S)
    return round(max(f.reported.bearing_temp for f in history) + LIMIT_ABOVE_BASE_C, 1)


def loop_config(
    settings: SimulatorSettings, limit_c: float, workdir: Path, cloud: DemoCloud, token: str
) -> AgentConfig:
    source = serial_config_for(
        settings, str(settings.link), name="pump2", backoff={"initial_s": 0.1, "max_s": 0.5}
    )
    data: dict[str, Any] = {
        "agent": {"name": DEVICE, "data_dir": str(workdir), "log_format": "text"},
        "sources": [source.model_dump(mode="json")],
        "channels": {name: {} for name in CHANNELS},
        "alarms": [
            {
                "name": "bearing-hot-predicted",
                "channel": "bearing_temp",
                "type": "forecast_above",
                "set": limit_c,
                "clear": limit_c - 1.0,
                "severity": "warning",
                "off_delay_s": OFF_DELAY_S,
            },
            {
                "name": "bearing-hot",
                "channel": "bearing_temp",
                "type": "value_above",
                "set": limit_c,
                "clear": limit_c - 1.0,
                "severity": "critical",
                "off_delay_s": OFF_DELAY_S,
            },
        ],
        "http": {"port": 0},
        "store": {"summary_interval_s": PERIOD_S},
        "sync": {
            "enabled": True,
            "url": cloud.url,
            "token": token,
            "interval_s": 1.0,
            "backoff": {"initial_s": 0.5, "max_s": 5.0},
        },
        # The guard judges every horizon: 100 model steps per channel (about 17 min of
        # pump time, a second of wall time) keep a long horizon's verdict off the noise.
        "ota": {"release_public_key": str(cloud.public_key), "guard_samples": GUARD_SAMPLES},
    }
    return AgentConfig.model_validate(data)


def run_loop(cloud: DemoCloud, workdir: Path, echo: Callable[[str], None]) -> LoopResult:
    workdir.mkdir(parents=True, exist_ok=True)
    token = cloud.add_device(DEVICE)
    settings = loop_settings(workdir / "pump2")
    limit = bearing_limit(settings)
    echo(
        f"second pump ({DEVICE}), fast-forwarded {SPEED:g}x: one reading per "
        f"{SENSOR_PERIOD_S:g} s of pump time, summaries every {PERIOD_S:g} s; its bearing "
        f"sensor starts drifting {DRIFT_RATE:g} °C/min after {DRIFT_AT_S / 60:g} min "
        f"(limit {limit} °C)"
    )
    stop_sim = threading.Event()
    ready = threading.Event()
    epoch = time.time() - WALL_LIMIT_S * SPEED
    simulator = threading.Thread(
        target=run_simulator,
        args=(settings, stop_sim, lambda _path: ready.set(), epoch),
        daemon=True,
    )
    simulator.start()
    result = LoopResult()
    try:
        if not ready.wait(10):
            raise RuntimeError("the simulator did not open its pseudo-terminal")
        config = loop_config(settings, limit, workdir, cloud, token)

        def on_step(step: str) -> None:
            if step == "swapped":
                result.swap_ts = max(
                    (ch.last_ts for ch in agent.pipeline.channels.values() if ch.last_ts),
                    default=None,
                )

        agent = Agent(LoadedConfig(workdir / "demo-loop.toml", config), on_ota_step=on_step)
        agent.alarm_listeners.append(result.events.append)
        asyncio.run(_drive(agent, cloud, result, echo, epoch, workdir / READINGS_CSV))
    finally:
        stop_sim.set()
        simulator.join(5)
    summarize_loop(agent, result, epoch, limit, workdir, cloud, echo)
    return result


async def _drive(
    agent: Agent,
    cloud: DemoCloud,
    result: LoopResult,
    echo: Callable[[str], None],
    epoch: float,
    readings: Path,
) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(agent.run(stop))
    try:
        history = round(HISTORY_S / SENSOR_PERIOD_S)
        await _until(lambda: _fewest(agent) >= history and _synced(agent), runner)
        echo(
            f"  {_fewest(agent)} readings per channel on the default model, all summaries "
            f"in the cloud; retraining (`cloud-sync retrain --fleet`):"
        )
        result.retrain_exit = await asyncio.to_thread(cloud.retrain, echo)
        deadline = time.monotonic() + UPDATE_TIMEOUT_S
        assert agent.ota is not None
        while time.monotonic() < deadline and not runner.done():
            report = agent.ota.report()
            if report.state in _FINISHED and report.version is not None:
                break
            if result.retrain_exit is not None and not cloud.has_release(DEVICE):
                echo("  no release for this device: it keeps the default model")
                break
            await asyncio.sleep(0.2)
        report = agent.ota.report()
        result.update_state = report.state.value
        result.update_version = report.version
        result.update_reason = report.reason
        if report.guard_samples and report.guard_mae_new is not None:
            result.guard = (report.guard_samples, report.guard_mae_new, report.guard_mae_old or 0)
        if report.state is ModelUpdateState.INSTALLED and result.swap_ts is not None:
            swap_ts = result.swap_ts
            echo(
                f"  model {report.version} running since pump time "
                f"{(swap_ts - epoch) / 60:.0f} min; reading on"
            )
            await _until(lambda: _after(agent, swap_ts) >= AFTER_PERIODS, runner)
            result.readings = _export_readings(agent, readings)
    finally:
        stop.set()
        await runner


async def _until(condition: Callable[[], bool], runner: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + WALL_LIMIT_S
    while not condition():
        if runner.done():
            runner.result()  # the agent's own error, if it failed
            raise RuntimeError("the agent stopped")
        if time.monotonic() > deadline:
            raise RuntimeError("the closed loop took too long")
        await asyncio.sleep(0.1)


def _fewest(agent: Agent) -> int:
    return min((ch.processed for ch in agent.pipeline.channels.values()), default=0)


def _after(agent: Agent, ts: float) -> int:
    return min(
        (
            round((ch.last_ts - ts) / PERIOD_S)
            for ch in agent.pipeline.channels.values()
            if ch.last_ts is not None
        ),
        default=0,
    )


def _synced(agent: Agent) -> bool:
    sync = agent.status().sync
    return not sum(sync.backlog.values()) and sync.in_flight is None and sync.batches_sent > 0


# -- the summary -------------------------------------------------------------------------


def summarize_loop(
    agent: Agent,
    result: LoopResult,
    epoch: float,
    limit: float,
    workdir: Path,
    cloud: DemoCloud,
    echo: Callable[[str], None],
) -> None:
    echo("the closed loop (pump time in minutes):")
    if result.retrain_exit not in (0, None):
        echo(f"  `cloud-sync retrain` exited {result.retrain_exit}")
    echo(f"  model update: {result.update_state} {result.update_version or ''}".rstrip())
    if result.update_reason:
        echo(f"    reason: {result.update_reason}")
    if result.guard is not None:
        n, new, old = result.guard
        echo(
            f"    live guard, same {n} samples: new model MAE {new:.4f}, previous model "
            f"(in shadow) {old:.4f} ({_change(old, new)})"
        )
    if result.swap_ts is not None and result.readings:
        _compare(agent, result.swap_ts, workdir, cloud, echo)
    raised = [e for e in result.events if e.kind is AlarmEventKind.RAISED]
    echo(f"  alarms ({len(raised)}):")
    echo(f"    {DRIFT_AT_S / 60:6.0f}  FAULT  bearing sensor drift begins ({DRIFT_RATE:g} °C/min)")
    for event in raised:
        a = event.alarm
        echo(
            f"    {(a.raised_at - epoch) / 60:6.0f}  ALARM  {a.rule} on {a.channel} "
            f"[{a.severity.value}] {a.message}".rstrip()
        )
    first = {e.alarm.rule: e.alarm.raised_at for e in reversed(raised)}
    if "bearing-hot-predicted" in first and "bearing-hot" in first:
        lead = (first["bearing-hot"] - first["bearing-hot-predicted"]) / 60
        echo(f"  the crossing of {limit} °C was predicted {lead:.1f} min ahead")
    twin = cloud.twin_of(DEVICE)
    if twin is not None:
        model = (twin.get("reported") or {}).get("model") or {}
        echo(
            f"  the cloud's twin of {DEVICE}: model {model.get('version')}, "
            f"last batch #{twin.get('last_sequence')}"
        )


def _compare(
    agent: Agent, swap_ts: float, workdir: Path, cloud: DemoCloud, echo: Callable[[str], None]
) -> None:
    """Both models over the same interval means (the series the cloud trained on and
    the new model runs on): the default and the installed one, each through the
    pipeline (`edge-agent replay`), MAE after the swap at the same horizons in time."""
    readings = workdir / READINGS_CSV
    installed = agent.model.path
    base = agent.config.model_dump(mode="json", exclude={"sources", "sync", "ota", "http"})
    maes: dict[str, dict[tuple[str, int], float]] = {}
    for label, model in (
        ("default", {}),
        ("new", {"bundle": str(installed), "public_key": str(cloud.public_key)}),
    ):
        config = AgentConfig.model_validate(
            {**base, "agent": {**base["agent"], "data_dir": str(workdir / label)}, "model": model}
        )
        out = workdir / f"replay-{label}.csv"
        run_backtest(LoadedConfig(workdir / f"{label}.toml", config), readings, out)
        maes[label], counts = _mae_after(out, swap_ts)
    after = next(iter(counts.values()), 0)
    longest = agent.model.forecaster.horizons[-1]
    near, far = duration_text(PERIOD_S), duration_text(longest * PERIOD_S)
    echo(
        f"  forecast MAE on the same {after} {duration_text(PERIOD_S)} means per channel "
        "after the update:"
    )
    echo(
        f"    {'channel':13s} {f'{near} ahead: default':>17s} {'new':>8s} {'change':>8s}   "
        f"{f'{far} ahead: default':>19s} {'new':>8s} {'change':>8s}"
    )
    relative: dict[int, list[float]] = {1: [], longest: []}
    for channel in CHANNELS:
        old, new = maes["default"].get((channel, 1)), maes["new"].get((channel, 1))
        old_h, new_h = maes["default"].get((channel, longest)), maes["new"].get((channel, longest))
        if old is None or new is None or old_h is None or new_h is None:
            continue
        relative[1].append((new - old) / old)
        relative[longest].append((new_h - old_h) / old_h)
        echo(
            f"    {channel:13s} {old:17.4f} {new:8.4f} {_change(old, new):>8s}   "
            f"{old_h:19.4f} {new_h:8.4f} {_change(old_h, new_h):>8s}"
        )
    if relative[1]:
        mean = {h: 100 * sum(r) / len(r) for h, r in relative.items()}
        echo(
            f"    mean change over channels: {mean[1]:+.1f} % {near} ahead, "
            f"{mean[longest]:+.1f} % {far} ahead"
        )


def _export_readings(agent: Agent, path: Path) -> int:
    """The device's interval means (its stored summaries: what it synced, what the new
    model is fed) as one wide CSV (what `edge-agent replay` reads); returns the rows
    written."""
    agent.store.flush()
    by_ts: dict[float, dict[str, float]] = {}
    for channel in CHANNELS:
        for s in agent.store.summaries(channel, None, 1_000_000):
            by_ts.setdefault(s.start, {})[channel] = s.mean
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", *CHANNELS])
        for ts in sorted(by_ts):
            row = by_ts[ts]
            writer.writerow([f"{ts:.3f}", *(repr(row.get(c, math.nan)) for c in CHANNELS)])
    return len(by_ts)


def _mae_after(out: Path, after: float) -> tuple[dict[tuple[str, int], float], dict[str, int]]:
    """MAE per (channel, horizon) over the samples after ``after``, for one step ahead
    and the replay's longest horizon, and the count of samples per channel.

    The replay writes, per sample, the one-step forecast made for it and the newest
    longest-horizon forecast; the latter is scored against the value that many samples
    later."""
    series: dict[str, list[tuple[float, float, float, float]]] = {}
    longest = 1
    with out.open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        h_column = next(c for c in reader.fieldnames or [] if c.startswith("forecast_h"))
        longest = int(h_column.removeprefix("forecast_h"))
        for row in reader:
            ts = parse_timestamp(row["timestamp"])
            if ts is None:
                raise ValueError(f"{out}: unreadable timestamp {row['timestamp']!r}")
            series.setdefault(row["channel"], []).append(
                (ts, float(row["value"]), _number(row["forecast"]), _number(row[h_column]))
            )
    maes: dict[tuple[str, int], float] = {}
    counts: dict[str, int] = {}
    for channel, rows in series.items():
        one = [abs(v - f) for ts, v, f, _ in rows if ts > after and not math.isnan(f)]
        ahead = [
            abs(rows[i + longest][1] - rows[i][3])
            for i in range(len(rows) - longest)
            if rows[i + longest][0] > after and not math.isnan(rows[i][3])
        ]
        if one and ahead:
            maes[(channel, 1)] = sum(one) / len(one)
            maes[(channel, longest)] = sum(ahead) / len(ahead)
            counts[channel] = len(one)
    return maes, counts


def _number(text: str) -> float:
    return float(text) if text else math.nan


def _change(old: float, new: float) -> str:
    return f"{100 * (new - old) / old:+.1f} %" if old else "n/a"
