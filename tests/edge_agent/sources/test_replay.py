"""The replay source: NAB files, pacing, bad rows, and the sync/async twins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_agent.reading import Reading
from edge_agent.sources.base import SourceState
from edge_agent.sources.errors import ReplayFileInvalid
from edge_agent.sources.replay import (
    COUNTERS,
    ROW_OUTCOMES,
    ReplaySource,
    ReplaySourceConfig,
)
from edgetwin_common.timestamps import parse_timestamp
from tests.conftest import require

NAB = Path("/work/shared/data/nab/data/realKnownCause")
NAB_FILE = NAB / "ambient_temperature_system_failure.csv"


def replay(path: Path, **fields: object) -> ReplaySource:
    data: dict[str, object] = {"type": "replay", "name": "r", "path": path, "speed": 0}
    data.update(fields)
    return ReplaySource(ReplaySourceConfig.model_validate(data))


async def drain(source: ReplaySource, limit: int | None = None) -> list[Reading]:
    out: list[Reading] = []
    async for reading in source.stream():
        out.append(reading)
        if limit is not None and len(out) >= limit:
            break
    return out


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_nab_file_replays_with_no_columns_configured() -> None:
    require(NAB_FILE.is_file(), f"NAB data at {NAB_FILE}")
    source = replay(NAB_FILE)
    assert source.channels() == ["value"]
    readings = asyncio.run(drain(source))
    rows = NAB_FILE.read_text(encoding="utf-8").splitlines()[1:]
    assert len(readings) == len(rows) == source.health.counters["rows_ok"]
    first_ts, first_value = rows[0].split(",")
    assert readings[0] == Reading(parse_timestamp(first_ts) or 0.0, "value", float(first_value))
    assert readings[0].ts == 1372896000.0  # 2013-07-04 00:00:00, naive read as UTC
    assert source.health.state is SourceState.FINISHED
    assert source.health.last_reading_ts == readings[-1].ts


def test_sync_iterator_and_async_stream_agree() -> None:
    require(NAB_FILE.is_file(), f"NAB data at {NAB_FILE}")
    sync = list(replay(NAB_FILE).iter_readings())
    streamed = asyncio.run(drain(replay(NAB_FILE)))
    assert sync == streamed


def test_a_nab_hour_that_repeats_is_skipped_as_backwards() -> None:
    # machine_temperature_system_failure.csv jumps from 02:55 back to 02:00 at line 10151.
    path = NAB / "machine_temperature_system_failure.csv"
    require(path.is_file(), f"NAB data at {path}")
    source = replay(path)
    readings = list(source.iter_readings())
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps)
    assert source.health.counters["timestamps_backwards"] == 11
    assert "line 10161" in (source.health.last_error or "")


def test_accelerated_replay_keeps_order_and_timestamps(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-01T00:00:{s:02d}Z,{s * 1.5},{-s}\n" for s in range(0, 40, 2))
    path = write(tmp_path, "timestamp,flow,temp\n" + rows)
    fast = asyncio.run(drain(replay(path, speed=400.0)))  # 38 s of data at 400x
    assert fast == list(replay(path).iter_readings())
    assert [r.channel for r in fast[:4]] == ["flow", "temp", "flow", "temp"]
    assert fast[0].ts == 1704067200.0
    assert [r.ts for r in fast[::2]] == [1704067200.0 + s for s in range(0, 40, 2)]


def test_column_mapping_with_scale_and_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "time,temp_f,ignored\n1700000000,212,x\n1700000060,32,y\n")
    source = replay(
        path,
        timestamp_column="time",
        columns={"temp_f": {"channel": "temp_c", "scale": 5 / 9, "offset": -160 / 9}},
    )
    assert source.channels() == ["temp_c"]
    readings = list(source.iter_readings())
    assert [(r.ts, r.channel) for r in readings] == [(1700000000, "temp_c"), (1700000060, "temp_c")]
    assert [r.value for r in readings] == [pytest.approx(100.0), pytest.approx(0.0)]


def test_bad_rows_are_counted_and_skipped_with_their_line_number(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,value\n"
        "2024-01-01 00:00:00,1.0\n"  # line 2
        "2024-01-01 00:01:00,\n"  # 3: missing value
        "2024-01-01 00:02:00\n"  # 4: missing cell
        "2024-01-01 00:03:00,high\n"  # 5: text
        "yesterday,4.0\n"  # 6: bad timestamp
        "\n"  # 7: blank, ignored
        "2024-01-01 00:04:00,nan\n"  # 8: value dropped, row used
        "2023-12-31 23:00:00,6.0\n"  # 9: backwards
        "2024-01-01 00:05:00,7.0\n",  # 10
    )
    source = replay(path)
    readings = list(source.iter_readings())
    assert [r.value for r in readings] == [1.0, 7.0]
    counters = source.health.counters
    assert counters["rows_ok"] == 3
    assert counters["rows_missing_value"] == 2
    assert counters["rows_not_numeric"] == 1
    assert counters["rows_bad_timestamp"] == 1
    assert counters["timestamps_backwards"] == 1
    assert counters["values_not_finite"] == 1
    assert sum(counters[k] for k in ROW_OUTCOMES) == 8
    assert (
        source.health.last_error
        == f"{path} line 9: timestamps_backwards: '2023-12-31 23:00:00' goes back"
    )


def test_loop_keeps_timestamps_increasing(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,v\n100,1\n110,2\n120,3\n")
    source = replay(path, loop=True)
    readings = asyncio.run(drain(source, limit=7))
    assert [r.ts for r in readings] == [100, 110, 120, 130, 140, 150, 160]
    assert [r.value for r in readings] == [1, 2, 3, 1, 2, 3, 1]
    assert source.health.counters["loops"] == 2
    assert source.health.state is SourceState.CONNECTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-07-04 00:00:00", 1372896000.0),
        ("2013-07-04T00:00:00Z", 1372896000.0),
        ("2013-07-04T02:00:00+02:00", 1372896000.0),
        ("1372896000", 1372896000.0),
        ("1372896000.25", 1372896000.25),
        ("not a time", None),
        ("nan", None),
        ("", None),
    ],
)
def test_timestamps(text: str, expected: float | None) -> None:
    assert parse_timestamp(text) == expected


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    source = replay(path)
    with pytest.raises(ReplayFileInvalid, match=r"nope\.csv: no such file"):
        list(source.iter_readings())
    with pytest.raises(ReplayFileInvalid, match=r"nope\.csv"):
        asyncio.run(drain(source))
    with pytest.raises(ReplayFileInvalid, match=r"nope\.csv"):
        source.channels()


def test_missing_timestamp_column_names_file_and_header(tmp_path: Path) -> None:
    path = write(tmp_path, "time,value\n1,2\n")
    with pytest.raises(ReplayFileInvalid, match=r"data.csv: no timestamp column 'timestamp'"):
        list(replay(path).iter_readings())


def test_missing_configured_column(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,value\n1,2\n")
    source = replay(path, columns={"flow": {"channel": "flow"}})
    with pytest.raises(ReplayFileInvalid, match="no column 'flow'"):
        list(source.iter_readings())


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileInvalid, match="empty file"):
        list(replay(write(tmp_path, "")).iter_readings())


def test_counters_exist_from_the_start(tmp_path: Path) -> None:
    source = replay(tmp_path / "x.csv")
    assert set(source.health.counters) == set(COUNTERS)
    assert source.health.state is SourceState.STARTING
