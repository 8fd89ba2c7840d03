"""A twin update's cost on the event loop: the swap pause, and the live guard per period.

1. Swap pause. An event loop ticks every millisecond (the agent's loop, where samples,
   what-ifs and the advisor run) while a twin update does what TwinOtaManager does after
   its checks: ``load_twin`` in a worker thread, then ``TwinService.swap`` on the loop;
   a what-if runs on the loop every 50 ms throughout and reads ``service.twin``. Printed:
   the swap call itself, and the longest loop gap inside the update windows against
   outside them.
2. Guard per period. The simulated pump (1 Hz, 5 channels) in a real SQLite store; each
   period the guard reads the state (``TwinService.state``, in a worker thread in the
   agent) and runs both twins one step and k steps ahead (``TwinGuard.observe``, on the
   loop). Printed: p50/p99 of each.

Run: PYTHONPATH=. python bench/twin_swap.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import percentiles_us

from edge_agent.simulator.pump import SimulatorSettings, iter_frames
from edge_agent.store import Store, StoreConfig
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.model import load_twin
from edge_agent.twin.ota.guard import TwinGuard
from edge_agent.twin.scenario import Scenario, Segment
from edge_agent.twin.service import TwinService
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE, default_twin_public_key

SWAPS = 20
GUARD_PERIODS = 200
TICK_S = 0.001


def fill_store(store: Store, minutes: int) -> float:
    """The simulated pump at 1 Hz for ``minutes``; returns the last sample's time."""
    t = 0.0
    for frame in iter_frames(SimulatorSettings(rate_hz=1.0, seed=3)):
        values = frame.reported.as_dict()
        values["load"] = frame.load
        for channel, value in values.items():
            store.add_sample(frame.t, channel, value, None, None)
        t = frame.t
        if t >= minutes * 60.0:
            break
    store.flush()
    return t


async def swap_pause(service: TwinService) -> None:
    key = default_twin_public_key()
    gaps_in: list[float] = []
    gaps_out: list[float] = []
    swap_ns: list[int] = []
    free_ns: list[int] = []
    updating = False
    stop = asyncio.Event()
    scenario = Scenario(controls={"load": [Segment(value=0.8, minutes=60)]})

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            (gaps_in if updating else gaps_out).append(now - last)
            last = now

    async def whatifs() -> None:
        while not stop.is_set():
            answer = service.what_if(scenario)
            assert answer.channels
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(ticker()), asyncio.create_task(whatifs())]
    await asyncio.sleep(0.5)
    for _ in range(SWAPS):
        updating = True
        twin = await asyncio.to_thread(load_twin, DEFAULT_TWIN_BUNDLE, key)
        start = time.perf_counter_ns()
        previous = service.swap(twin)  # kept, as the guard keeps it
        swap_ns.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        del previous  # the guard's end (kept or rolled back) frees one twin
        free_ns.append(time.perf_counter_ns() - start)
        await asyncio.sleep(0.01)
        updating = False
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)
    p50, _ = percentiles_us(np.array(swap_ns))
    print(
        f"twin swap call (TwinService.swap, {SWAPS} swaps): p50 {p50:.2f} us, max "
        f"{max(swap_ns) / 1000:.2f} us"
    )
    f50, _ = percentiles_us(np.array(free_ns))
    print(f"freeing the replaced twin (its interpreter): p50 {f50:.0f} us")
    print(
        f"event-loop gap during load_twin + swap: max {max(gaps_in) * 1000:.2f} ms, p99 "
        f"{np.percentile(gaps_in, 99) * 1000:.2f} ms; outside: max "
        f"{max(gaps_out) * 1000:.2f} ms, p99 {np.percentile(gaps_out, 99) * 1000:.2f} ms "
        f"(tick {TICK_S * 1000:g} ms)"
    )


def guard_cost(service: TwinService, store_end: float) -> None:
    key = default_twin_public_key()
    new = load_twin(DEFAULT_TWIN_BUNDLE, key)
    previous = load_twin(DEFAULT_TWIN_BUNDLE, key)
    config = TwinConfig()
    guard = TwinGuard(new, previous, GUARD_PERIODS + 1, config.guard_steps, since=0.0)
    read_ns, observe_ns = [], []
    for i in range(GUARD_PERIODS):
        start = time.perf_counter_ns()
        history, end = service.state(store_end, flush=False, periods=guard.history_periods)
        read_ns.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        guard.last_end = -1.0  # the same stored period each time: count it again
        guard.observe(history, end + i)
        observe_ns.append(time.perf_counter_ns() - start)
    r50, r99 = percentiles_us(np.array(read_ns))
    o50, o99 = percentiles_us(np.array(observe_ns))
    print(
        f"guard per period, state read from SQLite ({guard.history_periods} periods x 5 "
        f"channels): p50 {r50:.0f} us, p99 {r99:.0f} us"
    )
    print(
        f"guard per period, both twins 1 and {guard.k} steps ahead (observe): "
        f"p50 {o50:.0f} us, p99 {o99:.0f} us"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-twin-swap-") as tmp:
        store = Store(Path(tmp) / "store.db", StoreConfig(), clock=lambda: 0.0)
        end = fill_store(store, 40)
        service = TwinService(TwinConfig(), lambda p: p, [], store, lambda: end)
        assert service.twin is not None, service.unavailable
        asyncio.run(swap_pause(service))
        guard_cost(service, end)
        store.close()


if __name__ == "__main__":
    main()
