"""The serial source on real pseudo-terminals read through real pyserial, fed by the
device simulator. Timeouts here are safety nets against hangs, never assertions."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.reading import Reading
from edge_agent.simulator import (
    CHANNELS,
    SimulatorSettings,
    generate_series,
    parse_fault,
    serial_config_for,
)
from edge_agent.simulator.pump import FIELD_DECIMALS
from edge_agent.sources.base import SourceState
from edge_agent.sources.errors import SourceBusy
from edge_agent.sources.lineproto import LINE_OUTCOMES, LineFormat
from edge_agent.sources.serial import COUNTERS, SerialSource, SerialSourceConfig
from tests.edge_agent.simulator.harness import running_simulator

SAFETY_S = 15.0
FAST_RECONNECT = {"backoff": {"initial_s": 0.02, "max_s": 0.1}, "read_timeout_s": 0.2}


async def collect(
    source: SerialSource,
    until: Callable[[list[Reading]], bool],
    on_reading: Callable[[Reading], None] | None = None,
) -> list[Reading]:
    """Readings from ``source.stream()`` until ``until(readings)`` holds."""
    readings: list[Reading] = []

    async def consume() -> None:
        async for reading in source.stream():
            readings.append(reading)
            if on_reading is not None:
                on_reading(reading)
            if until(readings):
                return

    await asyncio.wait_for(consume(), SAFETY_S)
    return readings


def rows_of(readings: list[Reading]) -> list[tuple[float, ...]]:
    """Readings of the simulator's lines (one per channel, in order) back into rows."""
    assert [r.channel for r in readings[: len(CHANNELS)]] == list(CHANNELS)
    it = iter(readings)
    return [
        tuple(r.value for r in batch) for batch in iter(lambda: list(itertools.islice(it, 4)), [])
    ]


def printed_rows(settings: SimulatorSettings, seconds: float) -> list[tuple[float, ...]]:
    return [
        tuple(round(getattr(f.reported, c), FIELD_DECIMALS[c]) for c in CHANNELS)
        for f in generate_series(settings, seconds)
    ]


@pytest.mark.parametrize("fmt", list(LineFormat))
def test_streams_the_simulated_pump_exactly(fmt: LineFormat, tmp_path: Path) -> None:
    settings = SimulatorSettings(rate_hz=200, format=fmt, seed=3, link=tmp_path / "pump0")
    with running_simulator(settings):
        source = SerialSource(serial_config_for(settings, str(tmp_path / "pump0")))
        readings = asyncio.run(collect(source, lambda rs: len(rs) >= 40 * len(CHANNELS)))
    rows = rows_of(readings)
    truth = printed_rows(settings, 30.0)
    first = truth.index(rows[0])
    assert rows == truth[first : first + len(rows)]  # in order, none lost, none altered
    assert source.health.state is SourceState.CONNECTED
    assert source.health.last_reading_ts is not None
    assert source.health.counters["lines_ok"] >= 40


def test_device_timestamps_come_from_the_line(tmp_path: Path) -> None:
    settings = SimulatorSettings(rate_hz=100, timestamps=True, format=LineFormat.KEY_VALUE)
    with running_simulator(settings) as sim:
        source = SerialSource(serial_config_for(settings, sim.paths[0]), clock=lambda: -1.0)
        readings = asyncio.run(collect(source, lambda rs: len(rs) >= 20))
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps)
    assert all(ts > 1e9 for ts in stamps)  # UNIX time printed by the device, not clock()
    # Four channels of one line share its stamp; consecutive lines are 1/rate apart.
    distinct = sorted(set(stamps))
    assert distinct[1] - distinct[0] == pytest.approx(0.01, abs=1e-3)


def test_unplugged_device_is_reconnected_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    link = tmp_path / "by-id-pump"
    settings = SimulatorSettings(
        rate_hz=100, seed=5, link=link, faults=(parse_fault("vanish@0.4s:0.3s"),)
    )
    states: list[SourceState] = []
    source = SerialSource(serial_config_for(settings, str(link), **FAST_RECONNECT))

    def watch() -> None:
        state = source.health.state
        if state is not SourceState.STARTING and (not states or states[-1] is not state):
            states.append(state)

    async def run() -> list[Reading]:
        async def watcher() -> None:  # sees DISCONNECTED, when no reading arrives
            while True:
                watch()
                await asyncio.sleep(0.005)

        task = asyncio.create_task(watcher())
        try:
            return await collect(
                source,
                lambda rs: source.health.counters["reconnects"] >= 1 and len(rs) >= 80,
                on_reading=lambda _: watch(),
            )
        finally:
            task.cancel()

    with (
        caplog.at_level(logging.INFO, logger="edge_agent.sources.serial"),
        running_simulator(settings) as sim,
    ):
        readings = asyncio.run(run())
        paths = list(sim.paths)
    assert len(paths) >= 2  # the simulator made a new pty when the device came back
    assert states[:3] == [SourceState.CONNECTED, SourceState.DISCONNECTED, SourceState.CONNECTED]
    health = source.health
    assert health.state is SourceState.CONNECTED
    assert health.counters["reconnects"] == 1
    assert health.counters["open_failures"] >= 1  # the link was gone for a while
    assert health.last_error is not None and "by-id-pump" in health.last_error
    reconnected_at = health.since
    assert any(r.ts >= reconnected_at for r in readings)  # readings resumed
    # Logged once per change (connected, lost, the reason becoming "cannot open",
    # connected again), not once per failed reopen.
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert len(caplog.records) <= 4


def test_source_waits_for_a_device_that_is_not_there_yet(tmp_path: Path) -> None:
    link = tmp_path / "late"
    settings = SimulatorSettings(rate_hz=100, link=link)
    source = SerialSource(serial_config_for(settings, str(link), **FAST_RECONNECT))
    started = threading.Event()

    async def run() -> list[Reading]:
        consumer = asyncio.create_task(collect(source, lambda rs: len(rs) >= 8))
        while source.health.counters["open_failures"] < 2:
            await asyncio.sleep(0.005)
        assert source.health.state is SourceState.DISCONNECTED
        assert str(link) in (source.health.last_error or "")
        started.set()
        return await consumer

    result: list[list[Reading]] = []

    def main() -> None:
        result.append(asyncio.run(run()))

    thread = threading.Thread(target=main)
    thread.start()
    assert started.wait(SAFETY_S)
    with running_simulator(settings):
        thread.join(SAFETY_S)
    assert len(result[0]) >= 8
    assert source.health.state is SourceState.CONNECTED
    assert source.health.counters["reconnects"] == 0  # the first connection is no reconnect


def test_garbage_dropouts_and_silence_are_counted_and_streaming_goes_on(tmp_path: Path) -> None:
    settings = SimulatorSettings(
        rate_hz=100,
        seed=11,
        faults=(
            parse_fault("garbage@0.2s:0.1s"),
            parse_fault("dropout@0.35s:0.3s"),
        ),
    )
    with running_simulator(settings) as sim:
        config = serial_config_for(settings, sim.paths[0], read_timeout_s=0.05)
        source = SerialSource(config)
        counters = source.health.counters
        asyncio.run(
            collect(
                source,
                lambda rs: counters["read_timeouts"] >= 1 and counters["lines_ok"] >= 70,
            )
        )
    rejected = sum(counters[k] for k in LINE_OUTCOMES) - counters["lines_ok"]
    assert rejected >= 1  # noise lines show up as garbage, partial, wrong count...
    assert counters["read_timeouts"] >= 1  # the dropout: silent, but not disconnected
    assert source.health.state is SourceState.CONNECTED
    assert counters["reconnects"] == 0


def test_counters_exist_from_the_start() -> None:
    config = SerialSourceConfig.model_validate(
        {
            "type": "serial",
            "name": "x",
            "port": "loop://",
            "format": "kv",
            "fields": {"a": {"channel": "a"}},
        }
    )
    source = SerialSource(config)
    assert set(source.health.counters) == set(COUNTERS)
    assert source.health.state is SourceState.STARTING
    assert source.channels() == ["a"]


def test_a_second_concurrent_stream_is_refused(tmp_path: Path) -> None:
    settings = SimulatorSettings(rate_hz=100)
    with running_simulator(settings) as sim:
        source = SerialSource(serial_config_for(settings, sim.paths[0]))

        async def run() -> None:
            first = source.stream()
            await asyncio.wait_for(anext(first), SAFETY_S)
            with pytest.raises(SourceBusy):
                await anext(source.stream())
            await first.aclose()
            # Closed: the reader thread is gone and the source can stream again.
            second = source.stream()
            await asyncio.wait_for(anext(second), SAFETY_S)
            await second.aclose()

        asyncio.run(run())
    assert not any(t.name == "source-pump0" for t in threading.enumerate())


def test_a_slow_consumer_loses_readings_and_they_are_counted(tmp_path: Path) -> None:
    settings = SimulatorSettings(rate_hz=1000)
    with running_simulator(settings) as sim:
        source = SerialSource(serial_config_for(settings, sim.paths[0]), queue_size=8)

        async def run() -> None:
            stream = source.stream()
            await asyncio.wait_for(anext(stream), SAFETY_S)
            while source.health.counters["readings_dropped_queue_full"] == 0:
                await asyncio.sleep(0.01)  # not reading: the queue fills up
            await stream.aclose()

        asyncio.run(asyncio.wait_for(run(), SAFETY_S))
    assert source.health.counters["readings_dropped_queue_full"] > 0
