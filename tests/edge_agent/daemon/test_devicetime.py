"""DeviceTime: health judged on the readings' own clock, run on between readings."""

from __future__ import annotations

from edge_agent.daemon.devicetime import DeviceTime


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_wall_clock_until_a_reading_then_the_readings_time_run_on() -> None:
    wall = Clock(2_000_000.0)
    device = DeviceTime(wall)
    assert device.now([None, None]) == 2_000_000.0
    # A fast-forwarded device a day behind the wall clock: its time, not the wall's.
    assert device.now([1_913_600.0, 1_913_599.9]) == 1_913_600.0
    wall.now += 4.0  # silence: the device's time runs on at the wall clock's pace
    assert device.now([1_913_600.0, 1_913_599.9]) == 1_913_604.0
    # A newer reading resets it; an older one (a channel behind) does not.
    assert device.now([1_913_900.0, 1_913_000.0]) == 1_913_900.0
    wall.now += 1.0
    assert device.now([1_913_899.0]) == 1_913_901.0


def test_a_device_time_with_its_stamps_is_a_clock() -> None:
    # now() without arguments reads the stamps it was given: code that takes a clock
    # (the twin's OTA guard) runs on the readings' time.
    wall = Clock(2_000_000.0)
    stamps: list[float | None] = []
    device = DeviceTime(wall, lambda: stamps)
    assert device.now() == 2_000_000.0
    stamps += [2_090_000.0, None]  # a fast-forwarded device a day ahead of the wall clock
    assert device.now() == 2_090_000.0
    wall.now += 2.0
    assert device.now() == 2_090_002.0
    assert device.now([2_095_000.0]) == 2_095_000.0  # given stamps still win
