"""The thread-to-loop plumbing of the Modbus, GPIO and 1-Wire sources."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from edge_agent.reading import Reading
from edge_agent.sources.threaded import QUEUE_FULL, Emit, thread_stream


def test_readings_arrive_in_order_and_the_thread_stops_with_the_stream() -> None:
    seen_stop = threading.Event()

    def run(stop: threading.Event, emit: Emit) -> None:
        for i in range(100):
            emit([Reading(float(i), "c", float(i))])
        stop.wait()
        seen_stop.set()

    async def main() -> list[float]:
        out: list[float] = []
        async for reading in thread_stream("t", run, Counter()):
            out.append(reading.value)
            if len(out) == 100:
                break
        return out

    assert asyncio.run(main()) == [float(i) for i in range(100)]
    assert seen_stop.is_set()


def test_a_bug_in_the_thread_ends_the_stream_with_its_error_after_the_readings() -> None:
    def run(stop: threading.Event, emit: Emit) -> None:
        emit([Reading(1.0, "c", 1.0), Reading(2.0, "c", 2.0)])
        raise IndexError("a bug")

    async def main() -> list[float]:
        out: list[float] = []
        with pytest.raises(IndexError, match="a bug"):
            async for reading in thread_stream("t", run, Counter()):
                out.append(reading.value)
        return out

    assert asyncio.run(main()) == [1.0, 2.0]


def test_a_full_queue_drops_and_counts_but_the_failure_gets_through() -> None:
    counters: Counter[str] = Counter()

    def run(stop: threading.Event, emit: Emit) -> None:
        emit([Reading(float(i), "c", float(i)) for i in range(10)])
        raise RuntimeError("bug")

    async def main() -> list[float]:
        out: list[float] = []
        with pytest.raises(RuntimeError, match="bug"):
            async for reading in thread_stream("t", run, counters, queue_size=4):
                out.append(reading.value)
        return out

    values = asyncio.run(main())
    # Every reading was either taken or counted as dropped, whatever the interleaving.
    assert counters[QUEUE_FULL] == 10 - len(values)
    assert values == sorted(values)
