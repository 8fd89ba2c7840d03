"""A centrifugal pump's sensors, generated deterministically: the ground truth.

``iter_frames(settings)`` is a pure generator: the same settings (seed included) give
the same frames, bit for bit, on every machine (it uses ``random.Random``, whose
sequence Python keeps stable). Each frame holds the physical truth, what the sensors
report (after stuck/spike faults), the exact bytes the device prints (None for a
dropout or while vanished) and the faults active. The pty writer only writes these
bytes on time, so a test or benchmark knows exactly when each fault begins
(``Fault.first_sample``).

Noise is drawn the same way whatever the faults, so a run with faults is identical to
the run without them up to the first fault's onset.

Physics (per sample, dt = 1 / rate_hz; docs/simulator.md has the reasoning):

- load (0..1, share of rated flow): the process demand (a slow cycle plus an
  Ornstein-Uhlenbeck wander, clamped to [0.15, 1]), capped at the load limit the host
  commands (``command.py``: ``load=0.6`` written back over the line); the limit ramps
  at ``load_ramp_per_s`` towards the setpoint, and to 1 when released.
- ambient (°C): a day cycle plus a slow wander.
- motor current (A): no-load current + a share proportional to load + wear friction.
- bearing temperature (°C): first-order lag (time constant bearing_tau_s) towards
  ambient + a rise proportional to load + wear friction + overheating.
- vibration RMS (mm/s): base + a term in load² (flow turbulence) + wear.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from edge_agent.simulator.command import COMMAND_FIELD, LoadCommand
from edge_agent.simulator.errors import SimulatorSettingsInvalid
from edge_agent.simulator.faults import CHANNELS, Fault, FaultKind
from edge_agent.sources.lineproto import LineFormat

__all__ = [
    "FIELD_DECIMALS",
    "TIMESTAMP_FIELD",
    "Frame",
    "PumpParams",
    "PumpState",
    "SensorValues",
    "SimulatorSettings",
    "format_line",
    "generate_series",
    "iter_frames",
]

TIMESTAMP_FIELD = "ts"
"""Field of the device timestamp (UNIX s) when ``SimulatorSettings.timestamps`` is set."""

FIELD_DECIMALS: dict[str, int] = {
    "bearing_temp": 2,
    "vibration": 3,
    "current": 2,
    "ambient": 2,
}
"""Decimals each field is printed with (what a microcontroller's printf would do)."""


@dataclass(frozen=True, slots=True)
class PumpParams:
    """The pump's physics; defaults are an ~11 kW process-water pump."""

    load_mean: float = 0.72
    load_cycle_amplitude: float = 0.12
    load_cycle_s: float = 1800.0
    """The process demand cycle (a tank filling and emptying)."""
    load_wander: float = 0.05
    """Standard deviation of the load's random wander (share of rated flow)."""
    load_wander_tau_s: float = 120.0
    load_min: float = 0.15
    """The pump's minimum flow: neither demand nor a setpoint takes the load below it."""
    load_ramp_per_s: float = 0.01
    """How fast the drive moves its load limit towards a new setpoint (share per s)."""
    ambient_mean_c: float = 22.0
    ambient_day_amplitude_c: float = 3.0
    ambient_wander_c: float = 0.3
    ambient_wander_tau_s: float = 600.0
    current_no_load_a: float = 7.5
    current_per_load_a: float = 13.5
    current_per_wear_a: float = 0.15
    """Extra current per mm/s of wear vibration (friction)."""
    bearing_rise_c: float = 15.0
    """Bearing above ambient at no load (friction of seals and grease)."""
    bearing_rise_per_load_c: float = 30.0
    bearing_per_wear_c: float = 2.0
    """Extra bearing temperature per mm/s of wear vibration."""
    bearing_tau_s: float = 300.0
    """Thermal time constant of the bearing housing."""
    vibration_base_mm_s: float = 1.1
    vibration_per_load2_mm_s: float = 1.4
    noise_bearing_c: float = 0.05
    noise_vibration_rel: float = 0.03
    noise_current_a: float = 0.1
    noise_ambient_c: float = 0.03


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """What ``edge-agent simulate`` runs.

    rate_hz: lines per second, (0, 10000].
    format: csv (fields in ``CHANNELS`` order, ``ts`` first when timestamps), kv or jsonl.
    seed: the whole series (noise, load, garbage bytes) depends only on it.
    faults: scheduled faults (``parse_fault``).
    link: a symlink kept pointing at the current pty (like /dev/serial/by-id), removed
        while the device has vanished; None: no link.
    duration_s: stop after this many seconds; None: run until stopped.
    timestamps: print the device's own UNIX time as field ``ts`` (then configure the
        source's timestamp_field = "ts").
    speed: simulated seconds per wall-clock second (fast-forward; > 1 needs
        ``timestamps`` so the agent keeps the simulated time). Lines are written at
        ``rate_hz * speed`` per second of wall time.
    report_load: print the actual load (0..1) as the last field ``load`` (the drive's
        own output, exact to 3 decimals): what the advisor reads the control from.

    Raises SimulatorSettingsInvalid for out-of-range values.
    """

    rate_hz: float = 10.0
    format: LineFormat = LineFormat.CSV
    seed: int = 0
    faults: tuple[Fault, ...] = ()
    link: Path | None = None
    duration_s: float | None = None
    timestamps: bool = False
    csv_delimiter: str = ","
    params: PumpParams = field(default_factory=PumpParams)
    speed: float = 1.0
    report_load: bool = False

    def __post_init__(self) -> None:
        if not (0 < self.rate_hz <= 10_000) or not math.isfinite(self.rate_hz):
            raise SimulatorSettingsInvalid(f"rate must be in (0, 10000] Hz, got {self.rate_hz}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise SimulatorSettingsInvalid(f"duration must be > 0 s, got {self.duration_s}")
        if not (0 < self.speed <= 100_000) or not math.isfinite(self.speed):
            raise SimulatorSettingsInvalid(f"speed must be in (0, 100000], got {self.speed}")
        if self.speed != 1.0 and not self.timestamps:
            raise SimulatorSettingsInvalid(
                "a fast-forwarded simulator must print timestamps (the agent would stamp "
                "the readings with the wall clock)"
            )
        if len(self.csv_delimiter) != 1 or self.csv_delimiter in "0123456789.-+eE\n\r":
            raise SimulatorSettingsInvalid(f"bad CSV delimiter {self.csv_delimiter!r}")

    def csv_fields(self) -> list[str]:
        """The CSV columns, in order (what the source's csv_fields must be)."""
        return (
            ([TIMESTAMP_FIELD] if self.timestamps else [])
            + list(CHANNELS)
            + ([COMMAND_FIELD] if self.report_load else [])
        )


@dataclass(frozen=True, slots=True)
class SensorValues:
    """One value per sensor: bearing_temp (°C), vibration (RMS mm/s), current (A),
    ambient (°C)."""

    bearing_temp: float
    vibration: float
    current: float
    ambient: float

    def as_dict(self) -> dict[str, float]:
        return {
            "bearing_temp": self.bearing_temp,
            "vibration": self.vibration,
            "current": self.current,
            "ambient": self.ambient,
        }


@dataclass(frozen=True, slots=True)
class PumpState:
    """What the pump carries from one sample to the next (its physics' memory), taken
    after sample ``index``: what ``rollforward.roll_forward`` continues from.

    bearing_c: the bearing's true temperature (°C); load: the actual load (0..1);
    load_limit: where the drive's ramped limit is (0..1); load_wander / ambient_wander:
    the Ornstein-Uhlenbeck wanders' current values (share, °C); setpoint: the host's
    setpoint in effect (None: no limit asked for).
    """

    index: int
    bearing_c: float
    load: float
    load_limit: float
    load_wander: float
    ambient_wander: float
    setpoint: float | None


@dataclass(frozen=True, slots=True)
class Frame:
    """One sample period of the simulated device.

    index: sample number from 0; t: its time offset from the start (s) = index / rate.
    load: the pump's load (0..1, ground truth).
    truth: the physical values; reported: what the sensors say (stuck, spikes).
    line: the bytes printed, None when nothing is (dropout, vanished).
    active: faults in effect at this sample.
    is_device_present: False while vanished.
    state: the pump's state after this sample (``roll_forward`` starts from it).
    """

    index: int
    t: float
    load: float
    truth: SensorValues
    reported: SensorValues
    line: bytes | None
    active: frozenset[FaultKind]
    is_device_present: bool
    state: PumpState


def format_line(
    fmt: LineFormat,
    values: SensorValues,
    ts: float | None = None,
    csv_delimiter: str = ",",
    load: float | None = None,
) -> bytes:
    """The line a microcontroller would print for ``values`` (``\\n``-terminated);
    ``ts`` (UNIX s) is printed first as field ``ts`` when given, ``load`` (0..1) last as
    field ``load``."""
    fields: list[tuple[str, str]] = []
    if ts is not None:
        fields.append((TIMESTAMP_FIELD, f"{ts:.3f}"))
    for name, value in values.as_dict().items():
        fields.append((name, f"{value:.{FIELD_DECIMALS[name]}f}"))
    if load is not None:
        fields.append((COMMAND_FIELD, f"{load:.3f}"))
    if fmt is LineFormat.CSV:
        text = csv_delimiter.join(v for _, v in fields)
    elif fmt is LineFormat.KEY_VALUE:
        text = " ".join(f"{k}={v}" for k, v in fields)
    else:
        text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields) + "}"
    return text.encode("ascii") + b"\n"


class _Ou:
    """Ornstein-Uhlenbeck wander with stationary standard deviation ``sigma``."""

    __slots__ = ("_decay", "_kick", "x")

    def __init__(self, sigma: float, tau_s: float, dt: float) -> None:
        self._decay = math.exp(-dt / tau_s)
        self._kick = sigma * math.sqrt(1.0 - self._decay**2)
        self.x = 0.0

    def step(self, gauss: float) -> float:
        self.x = self.x * self._decay + self._kick * gauss
        return self.x


_Window = tuple[Fault, int, int | None]
"""A fault and its first and end sample (None: to the end)."""


def _machine_faults(
    windows: list[_Window], n: int, dt: float
) -> tuple[float, float, set[FaultKind]]:
    """Wear and overheating (in their sensors' units) at sample ``n``, and the faults active."""
    wear = 0.0
    overheat = 0.0
    active: set[FaultKind] = set()
    for fault, first, end in windows:
        if n < first:
            continue
        is_active = end is None or n < end
        if is_active:
            active.add(fault.kind)
        if fault.kind is FaultKind.WEAR:
            # Wear is permanent: it stays at the level it reached.
            elapsed = (min(n, end) if end is not None else n) - first
            wear += (fault.rate or 0.0) * elapsed * dt / 60.0
        elif fault.kind is FaultKind.OVERHEAT and is_active:
            overheat += (fault.rate or 0.0) * (n - first) * dt / 60.0
    return wear, overheat, active


def _sensor_faults(
    windows: list[_Window],
    n: int,
    dt: float,
    reported: dict[str, float],
    stuck_values: dict[int, float],
) -> tuple[bool, bool, bool]:
    """Apply the sensor faults of sample ``n`` to ``reported`` (drift, stuck, spike) and
    say whether the device is present, silent and printing garbage."""
    present = True
    silent = False
    garbage = False
    for number, (fault, first, end) in enumerate(windows):
        if fault.kind is FaultKind.DRIFT and fault.channel is not None and n >= first:
            # Like wear, the offset a drift reached stays after it ends.
            drifted = (min(n, end) if end is not None else n) - first
            reported[fault.channel] += (fault.rate or 0.0) * drifted * dt / 60.0
        if n < first or (end is not None and n >= end):
            continue
        kind = fault.kind
        if kind is FaultKind.STUCK and fault.channel is not None:
            held = stuck_values.setdefault(number, reported[fault.channel])
            reported[fault.channel] = held
        elif kind is FaultKind.SPIKE and fault.channel is not None:
            reported[fault.channel] += fault.size or 0.0
        elif kind is FaultKind.VANISH:
            present = False
        elif kind is FaultKind.DROPOUT:
            silent = True
        elif kind is FaultKind.GARBAGE:
            garbage = True
    return present, silent, garbage


def demand_at(p: PumpParams, t: float, wander: float) -> float:
    """The process demand (0..1) at time ``t`` (s) with the load wander at ``wander``."""
    load = p.load_mean + p.load_cycle_amplitude * math.sin(2 * math.pi * t / p.load_cycle_s)
    return min(1.0, max(p.load_min, load + wander))


def ramp_limit(p: PumpParams, limit: float, setpoint: float | None, dt: float) -> float:
    """The drive's load limit one sample on: towards ``setpoint`` (1 when None) at
    ``load_ramp_per_s``."""
    target = 1.0 if setpoint is None else setpoint
    step = p.load_ramp_per_s * dt
    return limit + min(step, max(-step, target - limit))


def ambient_at(p: PumpParams, t: float, wander: float) -> float:
    """Ambient temperature (°C) at time ``t`` (s) with its wander at ``wander``."""
    return (
        p.ambient_mean_c + p.ambient_day_amplitude_c * math.sin(2 * math.pi * t / 86400.0) + wander
    )


def bearing_target(
    p: PumpParams, ambient: float, load: float, wear: float, overheat: float
) -> float:
    """The temperature (°C) the bearing tends to with these conditions held."""
    return (
        ambient
        + p.bearing_rise_c
        + p.bearing_rise_per_load_c * load
        + p.bearing_per_wear_c * wear
        + overheat
    )


def true_values(
    p: PumpParams, bearing: float, ambient: float, load: float, wear: float
) -> SensorValues:
    """The physical values of the other sensors for this bearing temperature."""
    return SensorValues(
        bearing_temp=bearing,
        vibration=p.vibration_base_mm_s + p.vibration_per_load2_mm_s * load * load + wear,
        current=p.current_no_load_a + p.current_per_load_a * load + p.current_per_wear_a * wear,
        ambient=ambient,
    )


def fault_windows(settings: SimulatorSettings) -> list[tuple[Fault, int, int | None]]:
    """Each scheduled fault with its first and end sample (None: to the end)."""
    rate = settings.rate_hz
    return [(f, f.first_sample(rate), f.end_sample(rate)) for f in settings.faults]


def machine_faults(windows: list[_Window], n: int, dt: float) -> tuple[float, float]:
    """Wear (mm/s) and overheating (°C of heat target) at sample ``n``."""
    wear, overheat, _ = _machine_faults(windows, n, dt)
    return wear, overheat


def iter_frames(
    settings: SimulatorSettings, epoch: float = 0.0, command: LoadCommand | None = None
) -> Iterator[Frame]:
    """Frames from sample 0 on (forever, or until ``duration_s``).

    epoch: UNIX time of sample 0, used only for the printed ``ts`` field.
    command: the host's load setpoint, read once a sample (``LoadCommand.take``); None:
        the pump follows the process demand alone.
    """
    p = settings.params
    rate = settings.rate_hz
    dt = 1.0 / rate
    rng = random.Random(settings.seed)
    # Garbage bytes come from their own generator so that injecting garbage does not
    # shift the physics noise (runs with and without faults stay comparable).
    garbage_rng = random.Random(f"{settings.seed}:garbage")
    load_wander = _Ou(p.load_wander, p.load_wander_tau_s, dt)
    ambient_wander = _Ou(p.ambient_wander_c, p.ambient_wander_tau_s, dt)
    bearing_alpha = 1.0 - math.exp(-dt / p.bearing_tau_s)  # exact first-order lag step
    windows = fault_windows(settings)
    stuck_values: dict[int, float] = {}  # fault number -> held value
    last_n = None if settings.duration_s is None else math.ceil(settings.duration_s * rate)
    bearing: float | None = None
    limit = 1.0
    n = 0
    while last_n is None or n < last_n:
        t = n * dt
        g_load, g_amb = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        g_bt, g_vib, g_cur, g_ambs = (rng.gauss(0.0, 1.0) for _ in range(4))

        setpoint = None if command is None else command.take(n)
        if n == 0:
            limit = 1.0 if setpoint is None else setpoint
        else:
            limit = ramp_limit(p, limit, setpoint, dt)
        load = max(p.load_min, min(demand_at(p, t, load_wander.step(g_load)), limit))
        ambient = ambient_at(p, t, ambient_wander.step(g_amb))

        wear, overheat, active = _machine_faults(windows, n, dt)
        target = bearing_target(p, ambient, load, wear, overheat)
        bearing = target if bearing is None else bearing + (target - bearing) * bearing_alpha
        truth = true_values(p, bearing, ambient, load, wear)
        reported = {
            "bearing_temp": truth.bearing_temp + p.noise_bearing_c * g_bt,
            "vibration": truth.vibration * (1.0 + p.noise_vibration_rel * g_vib),
            "current": truth.current + p.noise_current_a * g_cur,
            "ambient": truth.ambient + p.noise_ambient_c * g_ambs,
        }
        present, silent, garbage = _sensor_faults(windows, n, dt, reported, stuck_values)
        values = SensorValues(**reported)
        line: bytes | None = None
        if present and not silent:
            if garbage:
                line = garbage_rng.randbytes(garbage_rng.randint(8, 120)) + b"\n"
            else:
                ts = epoch + t if settings.timestamps else None
                shown = load if settings.report_load else None
                line = format_line(settings.format, values, ts, settings.csv_delimiter, shown)
        state = PumpState(n, bearing, load, limit, load_wander.x, ambient_wander.x, setpoint)
        yield Frame(n, t, load, truth, values, line, frozenset(active), present, state)
        n += 1


def generate_series(settings: SimulatorSettings, duration_s: float) -> list[Frame]:
    """The first ``duration_s`` seconds of frames (ceil(duration_s * rate) of them)."""
    count = math.ceil(duration_s * settings.rate_hz)
    return list(islice(iter_frames(settings), count))
