"""Faults injected into the simulated pump, scheduled by time offset from the start.

Spec grammar (one fault per ``--fault``)::

    KIND@START[:DURATION][,KEY=VALUE]...

    START, DURATION   a number with an optional unit: ms, s (default), m, h
                      e.g. 60, 60s, 1.5m, 250ms
    KIND              overheat | wear | drift | spike | stuck | dropout | garbage | vanish

    overheat@60s[,rate=C_PER_MIN]    lubrication loss: the bearing's heat target rises by
                                     rate °C/min (default 1.0); the temperature follows
                                     with the housing's thermal lag. With a DURATION the
                                     lubrication recovers afterwards and the bearing cools.
    wear@0s[,rate=MM_S_PER_MIN]      bearing wear: vibration RMS drifts up by rate mm/s
                                     per minute (default 0.2), with some extra friction
                                     heat and current; wear is permanent.
    drift@60s[:D][,channel=C][,rate=UNITS_PER_MIN]  calibration drift: C (default
                                     bearing_temp) reads high by rate units/min more
                                     (default 0.05) while the truth stays put; with a
                                     DURATION the offset then stays where it got to.
    spike@10s[:D][,channel=C][,size=X]  sensor glitch: C (default bearing_temp) reads X
                                     higher (default per channel) for one sample, or for D.
    stuck@20s[:D][,channel=C]        sensor stuck: C repeats its last value (until the end,
                                     or for D).
    dropout@40s[:D]                  no lines for D (default 5s): the device stays there.
    garbage@15s[:D]                  random bytes instead of lines for one sample, or for D.
    vanish@30s[:D]                   the device disappears (pty closed, link removed) and
                                     comes back as a new pty after D (default 5s).

Faults are placed on the sample grid: a fault at START begins with sample
``ceil(START * rate)`` and lasts ``max(1, round(DURATION * rate))`` samples.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from edge_agent.simulator.errors import FaultSpecInvalid

__all__ = ["CHANNELS", "Fault", "FaultKind", "fault_argument", "parse_fault"]

CHANNELS: tuple[str, ...] = ("bearing_temp", "vibration", "current", "ambient")
"""The pump's sensors, also the field names in the lines it prints."""


class FaultKind(StrEnum):
    OVERHEAT = "overheat"
    WEAR = "wear"
    DRIFT = "drift"
    SPIKE = "spike"
    STUCK = "stuck"
    DROPOUT = "dropout"
    GARBAGE = "garbage"
    VANISH = "vanish"


_DEFAULT_DURATION_S: dict[FaultKind, float | None] = {
    FaultKind.OVERHEAT: None,
    FaultKind.WEAR: None,
    FaultKind.DRIFT: None,
    FaultKind.SPIKE: 0.0,
    FaultKind.STUCK: None,
    FaultKind.DROPOUT: 5.0,
    FaultKind.GARBAGE: 0.0,
    FaultKind.VANISH: 5.0,
}
_KEYS: dict[FaultKind, frozenset[str]] = {
    FaultKind.OVERHEAT: frozenset({"rate"}),
    FaultKind.WEAR: frozenset({"rate"}),
    FaultKind.DRIFT: frozenset({"channel", "rate"}),
    FaultKind.SPIKE: frozenset({"channel", "size"}),
    FaultKind.STUCK: frozenset({"channel"}),
    FaultKind.DROPOUT: frozenset(),
    FaultKind.GARBAGE: frozenset(),
    FaultKind.VANISH: frozenset(),
}
DEFAULT_RATE: dict[FaultKind, float] = {
    FaultKind.OVERHEAT: 1.0,
    FaultKind.WEAR: 0.2,
    FaultKind.DRIFT: 0.05,
}
"""overheat: °C/min of heat target; wear: mm/s of vibration RMS per minute; drift:
channel units per minute of reading offset."""
DEFAULT_SPIKE_SIZE: dict[str, float] = {
    "bearing_temp": 15.0,
    "vibration": 6.0,
    "current": 10.0,
    "ambient": 8.0,
}
"""Spike height in the channel's units (°C, mm/s, A, °C)."""

_TIME = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_GRAMMAR = "KIND@START[:DURATION][,KEY=VALUE]... e.g. overheat@60s, vanish@30s:5s"


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault. ``start_s``/``duration_s`` in seconds from the simulator's
    start; ``duration_s`` None lasts until the end. ``rate``, ``channel`` and ``size``
    are set (to defaults) for the kinds that use them, else None."""

    kind: FaultKind
    start_s: float
    duration_s: float | None = None
    channel: str | None = None
    rate: float | None = None
    size: float | None = None

    def first_sample(self, rate_hz: float) -> int:
        """Index of the first sample the fault affects (the ground-truth onset)."""
        return math.ceil(self.start_s * rate_hz - 1e-9)

    def end_sample(self, rate_hz: float) -> int | None:
        """Index of the first sample after the fault; None when it never ends."""
        if self.duration_s is None:
            return None
        return self.first_sample(rate_hz) + max(1, round(self.duration_s * rate_hz))

    def __str__(self) -> str:
        text = f"{self.kind.value}@{_fmt(self.start_s)}"
        if self.duration_s is not None:
            text += f":{_fmt(self.duration_s)}"
        for key in ("channel", "rate", "size"):
            value = getattr(self, key)
            if value is not None:
                text += f",{key}={value!r}" if isinstance(value, float) else f",{key}={value}"
        return text


def _fmt(seconds: float) -> str:
    # The shortest text that parses back to the same float, without an exponent (the
    # time grammar has none): 60 -> "60s", 10000.25 -> "10000.25s".
    text = format(Decimal(repr(seconds)), "f")
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "s"


def _seconds(text: str, spec: str, what: str) -> float:
    match = _TIME.match(text.strip())
    if match is None:
        raise FaultSpecInvalid(
            f"{spec!r}: {what} {text!r} is not a time (like 30, 30s, 1.5m, 250ms)"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


def parse_fault(spec: str) -> Fault:
    """Parse one fault spec (grammar in this module's docstring).

    Raises FaultSpecInvalid quoting the spec and saying what is wrong.
    """
    head, *options = spec.strip().split(",")
    kind_text, at, when = head.partition("@")
    try:
        kind = FaultKind(kind_text.strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        raise FaultSpecInvalid(
            f"{spec!r}: unknown fault {kind_text!r} (known: {kinds}); {_GRAMMAR}"
        ) from None
    if not at or not when.strip():
        raise FaultSpecInvalid(f"{spec!r}: missing @START; {_GRAMMAR}")
    start_text, colon, duration_text = when.partition(":")
    start = _seconds(start_text, spec, "start")
    duration = _DEFAULT_DURATION_S[kind]
    if colon:
        duration = _seconds(duration_text, spec, "duration")
    values: dict[str, str] = {}
    for option in options:
        key, eq, value = (part.strip() for part in option.partition("="))
        if not eq or not key or not value:
            raise FaultSpecInvalid(f"{spec!r}: option {option!r} is not KEY=VALUE")
        if key not in _KEYS[kind]:
            allowed = ", ".join(sorted(_KEYS[kind])) or "none"
            raise FaultSpecInvalid(f"{spec!r}: {kind.value} takes no {key!r} (allowed: {allowed})")
        values[key] = value
    channel: str | None = None
    if "channel" in _KEYS[kind]:
        channel = values.get("channel", "bearing_temp")
        if channel not in CHANNELS:
            raise FaultSpecInvalid(
                f"{spec!r}: unknown channel {channel!r} (known: {', '.join(CHANNELS)})"
            )
    rate = _number(values, "rate", spec, DEFAULT_RATE.get(kind)) if kind in DEFAULT_RATE else None
    size = None
    if kind is FaultKind.SPIKE:
        assert channel is not None
        size = _number(values, "size", spec, DEFAULT_SPIKE_SIZE[channel])
    return Fault(kind, start, duration, channel, rate, size)


def _number(values: dict[str, str], key: str, spec: str, default: float | None) -> float:
    if key not in values:
        assert default is not None
        return default
    try:
        value = float(values[key])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise FaultSpecInvalid(f"{spec!r}: {key}={values[key]!r} is not a number")
    return value


def fault_argument(spec: str) -> Fault:
    """``parse_fault`` for ``argparse`` (``type=fault_argument``): the error message is
    shown as written instead of argparse's generic "invalid value"."""
    try:
        return parse_fault(spec)
    except FaultSpecInvalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
