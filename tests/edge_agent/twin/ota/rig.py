"""A real twin release rig: the simulated pump at 1 Hz written to a real SQLite store,
the shipped twin in a TwinService reading it, and a TwinOtaManager fetching from the
model OTA tests' real release server (uvicorn). Shared by the tests and the power-cut
child."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.simulator.pump import Frame, SimulatorSettings, iter_frames
from edge_agent.store import Store, StoreConfig
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.ota.manager import TwinOtaManager
from edge_agent.twin.ota.selftest import TWIN_CHILD_COMMAND
from edge_agent.twin.ota.start import installed_twins
from edge_agent.twin.service import TwinService
from edgetwin_contracts.batch import ModelUpdateState
from edgetwin_contracts.signing import load_public_key

from ...model.ota.releases import TOKEN

CHANNELS = ("bearing_temp", "vibration", "current", "ambient", "load")
LIMITS = {
    "bearing_temp": (-20.0, 150.0),
    "vibration": (0.0, 50.0),
    "current": (0.0, 100.0),
    "ambient": (-40.0, 60.0),
}
WARM_S = 25 * 60.0
"""Enough 1-minute periods for the guard's window (16) and k steps."""


@dataclass
class Pump:
    """The simulated pump written into ``store`` (summaries flushed every 10 s)."""

    store: Store
    frames: Iterator[Frame]
    t: float = 0.0
    next_flush: float = 10.0

    def run_until(self, t_end: float) -> None:
        for frame in self.frames:
            if frame.t >= self.next_flush:
                self.store.flush()
                self.next_flush += 10.0
            values = frame.reported.as_dict()
            values["load"] = frame.load
            for channel, value in values.items():
                self.store.add_sample(frame.t, channel, value, None, None)
            self.t = frame.t
            if frame.t >= t_end:
                break
        self.store.flush()


@dataclass
class TwinRig:
    manager: TwinOtaManager
    service: TwinService
    twins: ModelsDir
    pump: Pump
    events: list[AlarmEvent] = field(default_factory=list)

    def alarms(self) -> list[str]:
        return [e.alarm.rule for e in self.events if e.kind.value == "raised"]

    async def guard(self, minutes: int = 40) -> None:
        """Run the pump a minute at a time, letting the guard look after each."""
        for _ in range(minutes):
            if not self.manager.is_guarding:
                return
            self.pump.run_until(self.pump.t + 60.0)
            await self.manager.check_guard()
        raise AssertionError(f"the guard never decided: {self.manager.report()}")

    def close(self) -> None:
        self.pump.store.close()


def build_rig(
    root: Path,
    key_file: Path,
    url: str,
    *,
    twin: TwinConfig | None = None,
    ota: OtaConfig | None = None,
    on_step: Callable[[str], None] | None = None,
    command: Sequence[str] = TWIN_CHILD_COMMAND,
    seed: int = 7,
    store_name: str = "store.db",
) -> TwinRig:
    """The rig as the agent builds it at start: the installed twin (pointer) first,
    then the shipped one; the manager recovered from an interrupted trial."""
    store = Store(root / store_name, StoreConfig(), clock=lambda: 0.0)
    pump = Pump(store, iter_frames(SimulatorSettings(rate_hz=1.0, seed=seed)))
    twins = ModelsDir(root / "twins")
    config = twin or TwinConfig(guard_periods=5, guard_steps=5)
    service = TwinService(
        config, lambda p: p, [], store, lambda: pump.t, installed=installed_twins(twins, key_file)
    )
    events: list[AlarmEvent] = []
    engine = AlarmEngine([], (1,), sink=events.append, actions={})
    manager = TwinOtaManager(
        ota or OtaConfig(backoff={"initial_s": 0.05, "max_s": 0.05}, download_attempts=3),
        twins,
        service,
        engine=engine,
        key=load_public_key(key_file),
        key_file=key_file,
        downloader=Downloader(url, TOKEN, 10.0),
        device_channels=CHANNELS,
        limits=LIMITS,
        clock=lambda: pump.t,
        on_step=on_step,
        self_test_command=command,
    )
    manager.recover()
    return TwinRig(manager, service, twins, pump, events)


async def settle(rig: TwinRig) -> ModelUpdateState:
    """Guard until the release is kept or rolled back; returns the final state."""
    if rig.manager.is_guarding:
        await rig.guard()
    await asyncio.sleep(0)
    return rig.manager.report().state
