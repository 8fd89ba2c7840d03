"""bench/faults.py's pure parts: a seed's fault schedule (from the simulator's ground
truth) and the scoring of an alarm list against the fault windows.

Every kind of fault the simulator has, at seeded random times and durations, one after
the other with gaps so each can be judged on its own. Wear and drift are permanent in the
simulator (the wear, the calibration offset stay where they got to), so they close the
run, in random order; the six others come first, in random order. Levels a fault must
cross (overheat and drift: the bearing-hot rule's ``set``; wear: vibration-high's) are
found on the simulator's own frames, so each such fault lasts until a little after its
crossing, whatever the seed.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_agent.simulator import (
    CHANNELS,
    Fault,
    FaultKind,
    SimulatorSettings,
    iter_frames,
    parse_fault,
)

RATE_HZ = 10.0
WARM_S = 2700.0
"""No fault in the first 45 minutes: the anomaly rule's warm-up (30 min) and the
forecaster's first window at the bearing's period."""
GRACE_S = 120.0
"""An alarm raised up to this long after a fault's end is the fault's (a detection, and
counted in alarms per fault); later ones, and those outside every fault, are false."""
EARLY_S = 1.0
CLEAR_TARGET_S = 120.0
TAIL_S = 600.0
"""Fault-free time after the last fault's crossing."""
PERMANENT = (FaultKind.WEAR, FaultKind.DRIFT)
TRANSIENT = (
    FaultKind.OVERHEAT,
    FaultKind.SPIKE,
    FaultKind.STUCK,
    FaultKind.DROPOUT,
    FaultKind.GARBAGE,
    FaultKind.VANISH,
)
LEAD_KINDS = (FaultKind.OVERHEAT, FaultKind.DRIFT)


@dataclass(frozen=True, slots=True)
class Window:
    """One injected fault as the bench judges it (seconds from sample 0).

    end_s: the first sample after the fault; None for a permanent fault (wear, drift).
    crossing_s: when the reported value first reached the level the fault was sized
        to cross (overheat, drift: bearing-hot's set; wear: vibration-high's), else None.
    """

    fault: Fault
    start_s: float
    end_s: float | None
    crossing_s: float | None = None

    @property
    def kind(self) -> FaultKind:
        return self.fault.kind


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    windows: tuple[Window, ...]
    duration_s: float

    @property
    def faults(self) -> tuple[Fault, ...]:
        return tuple(w.fault for w in self.windows)


def _crossing(
    seed: int, faults: Sequence[Fault], channel: str, level: float, after_s: float, truth: bool
) -> float:
    """First time after ``after_s`` the ``channel`` (its physical truth, or what the
    sensor reports) reaches ``level``."""
    settings = SimulatorSettings(rate_hz=RATE_HZ, seed=seed, faults=tuple(faults))
    first = math.ceil(after_s * RATE_HZ)
    for frame in iter_frames(settings):
        values = frame.truth if truth else frame.reported
        if frame.index >= first and getattr(values, channel) >= level:
            return frame.t
        if frame.t > after_s + 4 * 3600:
            break
    raise RuntimeError(f"seed {seed}: {channel} never reaches {level} after {after_s:g} s")


def _spec(kind: FaultKind, at: float, dur: float | None, **options: object) -> Fault:
    text = f"{kind.value}@{at:.1f}s" + ("" if dur is None else f":{dur:.1f}s")
    text += "".join(f",{k}={v}" for k, v in options.items())
    return parse_fault(text)


def plan(seed: int, hot_c: float, vibration_high: float) -> Plan:
    """The seed's schedule: every kind once; ``hot_c`` and ``vibration_high`` are the
    levels overheat/drift and wear are sized to cross."""
    rng = random.Random(f"bench-faults:{seed}")
    order = rng.sample(TRANSIENT, len(TRANSIENT)) + rng.sample(PERMANENT, len(PERMANENT))
    at = WARM_S + rng.uniform(0, 600)
    done: list[Fault] = []
    windows: list[Window] = []
    for kind in order:
        crossing = None
        if kind is FaultKind.OVERHEAT:
            rate = round(rng.uniform(1.0, 2.0), 2)
            trial = [*done, _spec(kind, at, None, rate=rate)]
            crossing = _crossing(seed, trial, "bearing_temp", hot_c, at, truth=True)
            fault = _spec(kind, at, crossing - at + rng.uniform(30, 150), rate=rate)
            gap = 1800.0
        elif kind is FaultKind.DRIFT:
            rate = round(rng.uniform(0.5, 1.5), 2)
            trial = [*done, _spec(kind, at, None, rate=rate)]
            crossing = _crossing(seed, trial, "bearing_temp", hot_c, at, truth=False)
            fault = _spec(kind, at, crossing - at + rng.uniform(60, 180), rate=rate)
            gap = 300.0
        elif kind is FaultKind.WEAR:
            # Sized to end well above the level (the RMS scatters ±3 % around its truth).
            rate = round(rng.uniform(0.2, 0.6), 2)
            trial = [*done, _spec(kind, at, None, rate=rate)]
            crossing = _crossing(seed, trial, "vibration", vibration_high, at, truth=True)
            above = _crossing(seed, trial, "vibration", vibration_high * 1.15, at, truth=True)
            fault = _spec(kind, at, above - at + rng.uniform(30, 120), rate=rate)
            gap = 300.0
        elif kind is FaultKind.SPIKE:
            fault = _spec(kind, at, None, channel=rng.choice(CHANNELS))
            gap = rng.uniform(300, 600)
        elif kind is FaultKind.STUCK:
            fault = _spec(kind, at, rng.uniform(180, 480), channel=rng.choice(CHANNELS))
            gap = rng.uniform(300, 600)
        else:  # dropout, garbage, vanish: played in real time, kept short
            fault = _spec(kind, at, rng.uniform(15, 30))
            gap = rng.uniform(300, 600)
        first = fault.first_sample(RATE_HZ) / RATE_HZ
        end = fault.end_sample(RATE_HZ)
        end_s = end / RATE_HZ if end is not None else first
        permanent = kind in PERMANENT
        windows.append(Window(fault, first, None if permanent else end_s, crossing))
        done.append(fault)
        at = end_s + gap
    return Plan(seed, tuple(windows), at - 300.0 + TAIL_S)


@dataclass(frozen=True, slots=True)
class Raised:
    """An alarm as scored: times in seconds from sample 0; cleared_s None while active."""

    rule: str
    channel: str
    raised_s: float
    cleared_s: float | None


@dataclass
class Judged:
    window: Window
    alarms: list[Raised] = field(default_factory=list)

    @property
    def detected(self) -> bool:
        return bool(self.alarms)

    @property
    def lead_s(self) -> float | None:
        """Crossing minus the first alarm (positive: the alarm came first)."""
        if self.window.crossing_s is None or not self.alarms:
            return None
        return self.window.crossing_s - min(a.raised_s for a in self.alarms)

    @property
    def clear_s(self) -> float | None:
        """Time from the fault's end until its last alarm cleared (inf: one never did);
        None for a permanent fault or one with no alarm."""
        if self.window.end_s is None or not self.alarms:
            return None
        if any(a.cleared_s is None for a in self.alarms):
            return math.inf
        return max(0.0, max(a.cleared_s or 0.0 for a in self.alarms) - self.window.end_s)


@dataclass
class Score:
    judged: list[Judged]
    false_alarms: list[Raised]
    duration_s: float

    @property
    def outside_s(self) -> float:
        """Time outside every fault's window (end + GRACE_S; a permanent one: the rest)."""
        inside = sum(
            (self.duration_s if j.window.end_s is None else j.window.end_s + GRACE_S)
            - j.window.start_s
            for j in self.judged
        )
        return self.duration_s - inside


def score(windows: Sequence[Window], alarms: Sequence[Raised], duration_s: float) -> Score:
    """Each alarm raised in [start, end + GRACE_S] of a fault is that fault's (a
    permanent fault's window runs to the end); the others are false alarms."""
    judged = [Judged(w) for w in windows]
    false: list[Raised] = []
    for alarm in sorted(alarms, key=lambda a: a.raised_s):
        # The latest fault begun by then whose window holds it (a permanent fault's runs
        # to the end); EARLY_S: an alarm on silence is stamped with the last reading.
        owners = [
            j
            for j in judged
            if j.window.start_s - EARLY_S <= alarm.raised_s
            and (j.window.end_s is None or alarm.raised_s <= j.window.end_s + GRACE_S)
        ]
        if owners:
            max(owners, key=lambda j: j.window.start_s).alarms.append(alarm)
        else:
            false.append(alarm)
    return Score(judged, false, duration_s)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True, slots=True)
class KindFigures:
    kind: str
    faults: int
    detected: int
    lead_median_s: float | None
    alarms_median: float | None
    alarms_max: int
    cleared_in_time: int
    clearable: int
    clear_median_s: float | None


def figures(scores: Sequence[Score]) -> list[KindFigures]:
    """Per fault kind, in FaultKind order, then "all"."""
    rows = []
    everything = [j for s in scores for j in s.judged]
    for kind in [*FaultKind, None]:
        js = [j for j in everything if kind is None or j.window.kind is kind]
        if not js:
            continue
        leads = [j.lead_s for j in js if j.lead_s is not None]
        clears = [j.clear_s for j in js if j.clear_s is not None]
        counts = [len(j.alarms) for j in js]
        rows.append(
            KindFigures(
                kind="all" if kind is None else kind.value,
                faults=len(js),
                detected=sum(j.detected for j in js),
                lead_median_s=_median(leads),
                alarms_median=_median(counts),
                alarms_max=max(counts),
                cleared_in_time=sum(c <= CLEAR_TARGET_S for c in clears),
                clearable=len(clears),
                clear_median_s=_median(clears),
            )
        )
    return rows


def false_per_device_day(scores: Sequence[Score]) -> float:
    """False alarms per day of fault-free time."""
    days = sum(s.outside_s for s in scores) / 86400.0
    return sum(len(s.false_alarms) for s in scores) / days if days else 0.0
