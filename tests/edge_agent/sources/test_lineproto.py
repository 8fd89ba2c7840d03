"""The line protocol: golden cases per format, targeted rejections, and a property test
over random byte streams through the real assembler, parser and decoder."""

from __future__ import annotations

import itertools
import json
import math
import os
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.reading import Reading
from edge_agent.sources.lineproto import (
    LINE_OUTCOMES,
    LineAssembler,
    LineDecoder,
    LineFormat,
    LineOutcome,
    LineParser,
    ParsedLine,
    ParseError,
)
from edge_agent.sources.serial import SerialSourceConfig

CASES = Path(__file__).parent / "cases"
REGOLD = os.environ.get("EDGETWIN_REGOLD") == "1"
"""EDGETWIN_REGOLD=1 rewrites expected.jsonl / counters.json from the current behaviour
(review the diff before committing it)."""


def ticking_clock(start: float = 1000.0) -> Callable[[], float]:
    """A receive-time clock that advances 1 s per call: stable expected timestamps."""
    ticks: Iterator[float] = (start + i for i in range(1_000_000))
    return lambda: next(ticks)


def decode_stream(
    config: SerialSourceConfig, chunks: list[bytes]
) -> tuple[list[Reading], Counter[str]]:
    counters: Counter[str] = Counter()
    assembler = LineAssembler(config.max_line_bytes, counters)
    decoder = LineDecoder(config, counters, ticking_clock())
    readings: list[Reading] = []
    for chunk in chunks:
        for line in assembler.feed(chunk):
            readings += decoder.decode(line)
    assembler.drop_pending()
    return readings, counters


def lines_in(data: bytes) -> int:
    """How many lines a stream holds: every \\n-terminated segment, plus a trailing one."""
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def config_of(**fields: object) -> SerialSourceConfig:
    data: dict[str, object] = {"type": "serial", "name": "t", "port": "loop://"}
    data.update(fields)
    return SerialSourceConfig.model_validate(data)


# --- golden cases ------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_case(case: str) -> None:
    folder = CASES / case
    config = SerialSourceConfig.model_validate(
        tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))
    )
    data = (folder / "input").read_bytes()
    readings, counters = decode_stream(config, [data])
    got_readings = [{"ts": r.ts, "channel": r.channel, "value": r.value} for r in readings]
    got_counters = {k: v for k, v in sorted(counters.items()) if v}
    if REGOLD:
        (folder / "expected.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in got_readings), encoding="utf-8"
        )
        (folder / "counters.json").write_text(
            json.dumps(got_counters, indent=2) + "\n", encoding="utf-8"
        )
    expected = [
        json.loads(line)
        for line in (folder / "expected.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(got_readings) == len(expected)
    for got, want in zip(got_readings, expected, strict=True):
        assert got["channel"] == want["channel"]
        assert got["ts"] == pytest.approx(want["ts"])
        assert got["value"] == pytest.approx(want["value"])
    assert got_counters == json.loads((folder / "counters.json").read_text(encoding="utf-8"))
    assert sum(counters[k] for k in LINE_OUTCOMES) == lines_in(data)


# --- one format at a time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        (LineFormat.CSV, b"61.5,2.3,17.1"),
        (LineFormat.KEY_VALUE, b"temp=61.5 vib=2.3 amps=17.1"),
        (LineFormat.JSON, b'{"temp": 61.5, "vib": 2.3, "amps": 17.1}'),
    ],
)
def test_each_format_parses(fmt: LineFormat, line: bytes) -> None:
    parser = LineParser(fmt, {"temp", "vib", "amps"}, csv_fields=["temp", "vib", "amps"])
    assert parser.parse_line(line) == ParsedLine(
        [("temp", 61.5), ("vib", 2.3), ("amps", 17.1)], unmapped=0
    )
    assert parser.parse_line(line + b"\r") == parser.parse_line(line)


def test_csv_custom_delimiter_and_unmapped_columns() -> None:
    parser = LineParser(LineFormat.CSV, {"b"}, csv_fields=["a", "b", "c"], csv_delimiter=";")
    assert parser.parse_line(b"x;2.5;y") == ParsedLine([("b", 2.5)], unmapped=2)


def test_mapping_applies_scale_then_offset() -> None:
    config = config_of(
        format="kv",
        fields={
            "raw": {"channel": "temp_f", "scale": 1.8, "offset": 32.0},
            "ma": {"channel": "current", "scale": 0.001},
        },
    )
    readings, counters = decode_stream(config, [b"raw=100 ma=17250 extra=1\n"])
    assert [(r.channel, r.value) for r in readings] == [
        ("temp_f", pytest.approx(212.0)),
        ("current", pytest.approx(17.25)),
    ]
    assert counters["lines_ok"] == 1
    assert counters["fields_unmapped"] == 1


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", LineOutcome.EMPTY),
        (b"1,2", LineOutcome.WRONG_FIELD_COUNT),
        (b"1,2,3,4", LineOutcome.WRONG_FIELD_COUNT),
        (b"1,abc,3", LineOutcome.NOT_NUMERIC),
        (b"1,\x00,3", LineOutcome.GARBAGE),
        (b"\xff\xfe\xfd", LineOutcome.GARBAGE),
        (b"1" * 100, LineOutcome.TOO_LONG),
    ],
)
def test_csv_rejections(line: bytes, reason: LineOutcome) -> None:
    parser = LineParser(
        LineFormat.CSV, {"a", "b", "c"}, csv_fields=["a", "b", "c"], max_line_bytes=64
    )
    result = parser.parse_line(line)
    assert isinstance(result, ParseError)
    assert result.reason is reason


def test_nan_and_inf_drop_the_value_not_the_line() -> None:
    config = config_of(format="jsonl", fields={"a": {"channel": "a"}, "b": {"channel": "b"}})
    readings, counters = decode_stream(
        config, [b'{"a": NaN, "b": 1}\n{"a": -Infinity, "b": 2}\n{"a": null, "b": 3}\n']
    )
    assert [(r.channel, r.value) for r in readings] == [("b", 1.0), ("b", 2.0), ("b", 3.0)]
    assert counters["values_not_finite"] == 3
    assert counters["lines_ok"] == 3


def test_scale_overflow_counts_as_not_finite() -> None:
    config = config_of(format="kv", fields={"a": {"channel": "a", "scale": 1e300}})
    readings, counters = decode_stream(config, [b"a=1e300\n"])
    assert readings == []
    assert counters["values_not_finite"] == 1


def test_device_timestamps_going_backwards_are_dropped() -> None:
    config = config_of(
        format="csv", csv_fields=["ts", "a"], fields={"a": {"channel": "a"}}, timestamp_field="ts"
    )
    readings, counters = decode_stream(config, [b"10,1\n12,2\n11,3\n12,4\n13,5\n"])
    assert [(r.ts, r.value) for r in readings] == [(10, 1), (12, 2), (12, 4), (13, 5)]
    assert counters["timestamps_backwards"] == 1


def test_a_device_timestamp_far_in_the_future_is_refused_not_adopted() -> None:
    """A corrupted device clock (1.8e14): refused as invalid, and not the reference that
    every later line would be "backwards" of."""
    config = config_of(
        format="csv", csv_fields=["ts", "a"], fields={"a": {"channel": "a"}}, timestamp_field="ts"
    )
    lines = b"10,1\n180000000000000.5,2\n11,3\n12,4\n"
    readings, counters = decode_stream(config, [lines])
    assert [(r.ts, r.value) for r in readings] == [(10, 1), (11, 3), (12, 4)]
    assert counters["timestamps_invalid"] == 1
    assert counters["timestamps_backwards"] == 0


def test_receive_timestamps_going_backwards_are_dropped() -> None:
    times = iter([100.0, 99.0, 101.0])
    config = config_of(format="kv", fields={"a": {"channel": "a"}})
    counters: Counter[str] = Counter()
    decoder = LineDecoder(config, counters, lambda: next(times))
    out = [decoder.decode(line) for line in (b"a=1", b"a=2", b"a=3")]
    assert [[r.value for r in batch] for batch in out] == [[1.0], [], [3.0]]
    assert counters["timestamps_backwards"] == 1


# --- the assembler ------------------------------------------------------------------------


def test_over_long_line_is_counted_once_and_skipped_to_its_end() -> None:
    counters: Counter[str] = Counter()
    assembler = LineAssembler(16, counters)
    lines = []
    for chunk in (b"1.0\n" + b"x" * 10, b"x" * 10, b"x" * 30, b"yy\n2.0\n"):
        lines += assembler.feed(chunk)
    assert lines == [b"1.0", b"2.0"]
    assert counters["lines_too_long"] == 1


def test_line_split_across_chunks_is_reassembled() -> None:
    counters: Counter[str] = Counter()
    assembler = LineAssembler(64, counters)
    assert assembler.feed(b"61.") == []
    assert assembler.feed(b"5,2") == []
    assert assembler.feed(b".3\n61") == [b"61.5,2.3"]
    assembler.drop_pending()
    assert counters["lines_partial"] == 1


def test_resync_drops_the_first_line_after_opening() -> None:
    counters: Counter[str] = Counter()
    assembler = LineAssembler(64, counters)
    assembler.resync()
    assert assembler.feed(b".5,2.3\n61.6,2.4\n") == [b"61.6,2.4"]
    assert counters["lines_partial"] == 1


def test_silence_ends_a_pending_line_and_cancels_the_resync() -> None:
    counters: Counter[str] = Counter()
    assembler = LineAssembler(64, counters)
    assembler.resync()
    assembler.silence()  # nothing pending: the next byte starts a line
    assert assembler.feed(b"61.5\n6") == [b"61.5"]
    assembler.silence()  # "6" will never be finished
    assert assembler.feed(b"2.0\n") == [b"2.0"]
    assert counters["lines_partial"] == 1


# --- property: any bytes, any chunking ------------------------------------------------------

_ALPHABET = [*list(b'0123456789.,-=;: \t\r\nabce{}"[]nNaI'), 0, 7, 27, 255, 195]


@st.composite
def byte_streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    noisy = st.binary(max_size=200)
    plausible = st.lists(st.sampled_from(_ALPHABET), max_size=200).map(bytes)
    data = draw(st.one_of(noisy, plausible))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("fmt", list(LineFormat))
@settings(max_examples=150, deadline=None)
@given(stream=byte_streams())
def test_any_byte_stream_never_raises_and_every_line_is_counted(
    fmt: LineFormat, stream: tuple[bytes, list[bytes]]
) -> None:
    data, chunks = stream
    config = config_of(
        format=fmt.value,
        csv_fields=["a", "b"] if fmt is LineFormat.CSV else [],
        fields={"a": {"channel": "a"}, "b": {"channel": "b", "scale": 2.0}},
        max_line_bytes=24,
    )
    readings, counters = decode_stream(config, chunks)
    assert sum(counters[k] for k in LINE_OUTCOMES) == lines_in(data)
    assert len(readings) <= 2 * counters["lines_ok"]
    assert all(math.isfinite(r.value) for r in readings)
