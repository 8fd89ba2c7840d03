"""Line protocol of serial devices: split a byte stream into lines, parse, map to channels.

Three layers, each usable on its own and none doing I/O:

- ``LineAssembler`` cuts a stream of byte chunks into lines (``\\n``-terminated, a
  trailing ``\\r`` tolerated), enforcing ``max_line_bytes`` without ever buffering more.
- ``LineParser.parse_line`` turns one line into ``(field, raw value)`` pairs for the
  fields the source wants, or a ``ParseError`` naming why the line was rejected. Pure.
- ``LineDecoder`` applies the channel mapping (scale, offset), the timestamp, and counts
  every outcome into a ``Counter`` (the source's ``SourceHealth.counters``).

Every line ends up in exactly one of the counters in ``LINE_OUTCOMES``; value-level
problems (``values_not_finite``, ``fields_unmapped``) are counted on top.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from edge_agent.reading import MAX_FUTURE_S, Reading

if TYPE_CHECKING:
    # Only for annotations: linesource.py (the line sources' base) imports this module.
    from edge_agent.sources.linesource import LineSourceConfig

__all__ = [
    "FIELDS_UNMAPPED",
    "LINE_OUTCOMES",
    "VALUES_NOT_FINITE",
    "LineAssembler",
    "LineDecoder",
    "LineFormat",
    "LineOutcome",
    "LineParser",
    "ParseError",
    "ParsedLine",
]


class LineFormat(StrEnum):
    """The formats microcontrollers print, one record per line."""

    CSV = "csv"
    """Values separated by ``csv_delimiter``, in the order of ``csv_fields``: ``61.2,2.31,17.9``."""
    KEY_VALUE = "kv"
    """``key=value`` pairs separated by spaces, commas or semicolons: ``temp=61.2 vib=2.31``."""
    JSON = "jsonl"
    """One JSON object per line: ``{"temp": 61.2, "vib": 2.31}``."""


class LineOutcome(StrEnum):
    """What became of one line; the value is the counter name."""

    OK = "lines_ok"
    EMPTY = "lines_empty"
    """Blank line (devices often print one at boot): skipped."""
    GARBAGE = "lines_garbage"
    """Undecodable bytes, control characters, or not the configured format."""
    TOO_LONG = "lines_too_long"
    """Longer than max_line_bytes (excluding the terminator)."""
    PARTIAL = "lines_partial"
    """Cut off: the first line after (re)connecting, bytes pending when the device went
    away or fell silent for a read timeout, a JSON object without its closing brace."""
    WRONG_FIELD_COUNT = "fields_wrong_count"
    """A CSV line with more or fewer columns than csv_fields."""
    NOT_NUMERIC = "values_not_numeric"
    """A mapped field (or the timestamp field) holds text, a bool, an object..."""
    TIMESTAMP_INVALID = "timestamps_invalid"
    """timestamp_field is configured but missing from the line, or not finite."""
    TIMESTAMP_BACKWARDS = "timestamps_backwards"
    """Earlier than the previous accepted line's timestamp: dropped."""


LINE_OUTCOMES: tuple[str, ...] = tuple(o.value for o in LineOutcome)
"""Counter names that add up to the number of lines seen."""

VALUES_NOT_FINITE = "values_not_finite"
"""A value that is NaN, +-inf or null (JSON), or overflows after scale/offset: that value
is dropped, the rest of the line is used."""
FIELDS_UNMAPPED = "fields_unmapped"
"""Fields present in a line but not in the mapping: ignored."""


@dataclass(frozen=True, slots=True)
class ParseError:
    """Why a line was rejected: ``reason`` is the counter to bump, ``detail`` for humans."""

    reason: LineOutcome
    detail: str


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """The wanted fields of one line with their raw values (before scale and offset; may
    be NaN or inf), and how many other fields the line had."""

    values: list[tuple[str, float]]
    unmapped: int


_KV_EQUALS = re.compile(r"\s*=\s*")
_KV_SEPARATORS = re.compile(r"[\s,;]+")


def _number(text: str) -> float | None:
    """A float from text, None when it is not a number. Rejects "1_000" (Python accepts
    underscores; no device prints them, line noise might)."""
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


class LineParser:
    """Parses lines of one format. Stateless: ``parse_line`` is a pure function of the bytes.

    wanted: the field names to extract (mapped fields and the timestamp field); other
        fields are only counted (``ParsedLine.unmapped``), their text never parsed.
    """

    __slots__ = (
        "_csv_index",
        "_csv_unmapped",
        "_delimiter",
        "_encoding",
        "_format",
        "_max",
        "_wanted",
    )

    def __init__(
        self,
        format: LineFormat,
        wanted: Collection[str],
        *,
        csv_fields: Sequence[str] = (),
        csv_delimiter: str = ",",
        encoding: str = "utf-8",
        max_line_bytes: int = 512,
    ) -> None:
        self._format = format
        self._encoding = encoding
        self._max = max_line_bytes
        self._delimiter = csv_delimiter
        wanted_set = frozenset(wanted)
        self._csv_index: tuple[tuple[int, str], ...] = tuple(
            (i, name) for i, name in enumerate(csv_fields) if name in wanted_set
        )
        self._csv_unmapped = len(csv_fields) - len(self._csv_index)
        self._wanted = wanted_set

    @classmethod
    def from_config(cls, config: LineSourceConfig) -> LineParser:
        wanted = set(config.fields)
        if config.timestamp_field is not None:
            wanted.add(config.timestamp_field)
        return cls(
            config.format,
            wanted,
            csv_fields=config.csv_fields,
            csv_delimiter=config.csv_delimiter,
            encoding=config.encoding,
            max_line_bytes=config.max_line_bytes,
        )

    def parse_line(self, line: bytes) -> ParsedLine | ParseError:
        """Parse one line (without its ``\\n``; surrounding whitespace and ``\\r`` ignored).

        Never raises: every rejection is a ``ParseError`` whose reason is a counter name.
        """
        if len(line) > self._max:
            return ParseError(LineOutcome.TOO_LONG, f"{len(line)} bytes > {self._max}")
        try:
            text = line.decode(self._encoding).strip()
        except (UnicodeDecodeError, LookupError):
            return ParseError(LineOutcome.GARBAGE, f"not {self._encoding}: {_preview(line)}")
        if not text:
            return ParseError(LineOutcome.EMPTY, "blank line")
        if not text.isprintable() and not text.replace("\t", " ").isprintable():
            return ParseError(LineOutcome.GARBAGE, f"control characters: {_preview(line)}")
        if self._format is LineFormat.CSV:
            return self._csv(text)
        if self._format is LineFormat.KEY_VALUE:
            return self._kv(text)
        return self._json(text)

    def _csv(self, text: str) -> ParsedLine | ParseError:
        cells = text.split(self._delimiter)
        expected = len(self._csv_index) + self._csv_unmapped
        if len(cells) != expected:
            return ParseError(
                LineOutcome.WRONG_FIELD_COUNT, f"{len(cells)} fields, expected {expected}"
            )
        values: list[tuple[str, float]] = []
        for i, name in self._csv_index:
            value = _number(cells[i])
            if value is None:
                return ParseError(LineOutcome.NOT_NUMERIC, f"{name}={cells[i].strip()[:32]!r}")
            values.append((name, value))
        return ParsedLine(values, self._csv_unmapped)

    def _kv(self, text: str) -> ParsedLine | ParseError:
        tokens = _KV_SEPARATORS.split(_KV_EQUALS.sub("=", text).strip(" \t,;"))
        values: list[tuple[str, float]] = []
        unmapped = 0
        for token in tokens:
            key, sep, raw = token.partition("=")
            if not sep or not key or not raw:
                return ParseError(LineOutcome.GARBAGE, f"not key=value: {token[:32]!r}")
            if key not in self._wanted:
                unmapped += 1
                continue
            value = _number(raw)
            if value is None:
                return ParseError(LineOutcome.NOT_NUMERIC, f"{key}={raw[:32]!r}")
            values.append((key, value))
        return ParsedLine(values, unmapped)

    def _json(self, text: str) -> ParsedLine | ParseError:
        if not text.startswith("{"):
            return ParseError(LineOutcome.GARBAGE, f"not a JSON object: {text[:32]!r}")
        if not text.endswith("}"):
            return ParseError(LineOutcome.PARTIAL, f"JSON object not closed: {text[-32:]!r}")
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # RecursionError: "[[[[..." nested deeper than the decoder allows.
            return ParseError(LineOutcome.GARBAGE, f"invalid JSON: {str(exc)[:60]}")
        if not isinstance(obj, dict):
            return ParseError(LineOutcome.GARBAGE, "not a JSON object")
        values: list[tuple[str, float]] = []
        for key, raw in obj.items():
            if key not in self._wanted:
                continue
            if raw is None:
                values.append((key, math.nan))  # a sensor that failed to read
            elif isinstance(raw, bool) or not isinstance(raw, int | float):
                return ParseError(LineOutcome.NOT_NUMERIC, f"{key}={str(raw)[:32]!r}")
            else:
                try:
                    values.append((key, float(raw)))
                except OverflowError:  # an integer literal beyond float range
                    values.append((key, math.inf))
        return ParsedLine(values, len(obj) - len(values))


def _preview(line: bytes) -> str:
    return repr(line[:40]) + ("..." if len(line) > 40 else "")


class LineAssembler:
    """Cuts byte chunks into lines. Never holds more than ``max_line_bytes`` (plus one
    chunk): an over-long line is counted once as ``lines_too_long`` and its bytes are
    discarded up to the next ``\\n``."""

    __slots__ = ("_buf", "_counters", "_discarding", "_max", "_skip_next")

    def __init__(self, max_line_bytes: int, counters: Counter[str]) -> None:
        self._max = max_line_bytes
        self._counters = counters
        self._buf = bytearray()
        self._discarding = False
        self._skip_next = False

    def resync(self) -> None:
        """Forget pending bytes and drop the next line as partial: call after opening a
        port, which may happen while the device is in the middle of a line."""
        self._buf.clear()
        self._discarding = False
        self._skip_next = True

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines in ``data`` (with what was pending), without terminators."""
        buf = self._buf
        buf += data
        lines: list[bytes] = []
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            if self._discarding:
                self._discarding = False  # already counted when it overflowed
            elif self._skip_next:
                self._skip_next = False
                self._counters[LineOutcome.PARTIAL.value] += 1
            else:
                lines.append(bytes(buf[start:end]))
            start = end + 1
        del buf[:start]
        if len(buf) > self._max:
            if not self._discarding:
                self._counters[LineOutcome.TOO_LONG.value] += 1
                self._discarding = True
                self._skip_next = False
            buf.clear()
        return lines

    def silence(self) -> None:
        """The device said nothing for a read timeout: bytes pending now are a line that
        will not be finished (count it partial). A line starting after a silence starts
        at its beginning, so a pending ``resync`` is no longer needed."""
        if self._buf and not self._discarding:
            self._counters[LineOutcome.PARTIAL.value] += 1
        self._buf.clear()
        self._skip_next = False

    def drop_pending(self) -> None:
        """The stream ended (device gone, source stopped): count pending bytes as partial."""
        if self._buf and not self._discarding:
            self._counters[LineOutcome.PARTIAL.value] += 1
        self._buf.clear()
        self._discarding = False


class LineDecoder:
    """Lines to Readings for one line source (serial, tcp): parse, stamp, map, count.

    Timestamps are the device's ``timestamp_field`` (UNIX seconds) when configured, else
    ``clock()`` at decode time (receive time). A line whose timestamp is earlier than the
    last accepted line's is dropped (``timestamps_backwards``); equal is accepted.
    ``last_rejection`` holds the latest ParseError (for last_error and debugging).
    """

    __slots__ = (
        "_clock",
        "_counters",
        "_last_ts",
        "_mapping",
        "_parser",
        "_ts_ceiling",
        "_ts_field",
        "last_rejection",
    )

    def __init__(
        self,
        config: LineSourceConfig,
        counters: Counter[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._parser = LineParser.from_config(config)
        self._counters = counters
        self._clock = clock
        self._ts_field = config.timestamp_field
        self._mapping = {
            field: (m.channel, m.scale, m.offset) for field, m in config.fields.items()
        }
        self._last_ts = -math.inf
        self._ts_ceiling = -math.inf
        self.last_rejection: ParseError | None = None

    def _is_future(self, ts: float) -> bool:
        # A corrupted device clock must not become the reference every later line is
        # "backwards" of. The wall clock, not the receive clock (which tests replace):
        # read only when a timestamp passes the last ceiling, about once a day of data.
        self._ts_ceiling = time.time() + MAX_FUTURE_S
        return ts > self._ts_ceiling

    def decode(self, line: bytes) -> list[Reading]:
        """The readings of one line (possibly none); every outcome counted."""
        parsed = self._parser.parse_line(line)
        if isinstance(parsed, ParseError):
            return self._reject(parsed)
        counters = self._counters
        if self._ts_field is None:
            ts = self._clock()
        else:
            found = [v for f, v in parsed.values if f == self._ts_field]
            if not found or not math.isfinite(found[0]):
                return self._reject(
                    ParseError(LineOutcome.TIMESTAMP_INVALID, f"{self._ts_field} missing or bad")
                )
            ts = found[0]
            if ts > self._ts_ceiling and self._is_future(ts):
                return self._reject(
                    ParseError(
                        LineOutcome.TIMESTAMP_INVALID,
                        f"{self._ts_field} {ts:.6f}: more than {MAX_FUTURE_S:.0f} s ahead"
                        " of the clock",
                    )
                )
        if ts < self._last_ts:
            return self._reject(
                ParseError(
                    LineOutcome.TIMESTAMP_BACKWARDS, f"{ts:.6f} < previous {self._last_ts:.6f}"
                )
            )
        self._last_ts = ts
        readings: list[Reading] = []
        mapping = self._mapping
        for field, raw in parsed.values:
            target = mapping.get(field)
            if target is None:
                continue  # the timestamp field, when it is not also a channel
            channel, scale, offset = target
            value = raw * scale + offset
            if math.isfinite(value):
                readings.append(Reading(ts, channel, value))
            else:
                counters[VALUES_NOT_FINITE] += 1
        counters[LineOutcome.OK.value] += 1
        if parsed.unmapped:
            counters[FIELDS_UNMAPPED] += parsed.unmapped
        return readings

    def _reject(self, error: ParseError) -> list[Reading]:
        self._counters[error.reason.value] += 1
        self.last_rejection = error
        return []
