"""The simulator takes a command: a load setpoint written back over a real pty through
real pyserial, and the noise-free roll-forward that a twin's what-if is scored against."""

from __future__ import annotations

import threading
from itertools import islice
from typing import Any

import pytest
import serial

from edge_agent.simulator import SimulatorSettings, iter_frames, parse_fault, run_simulator
from edge_agent.simulator.command import LoadCommand, format_command, parse_command
from edge_agent.simulator.errors import SetpointInvalid
from edge_agent.simulator.rollforward import roll_forward
from edge_agent.sources.lineproto import LineFormat
from tests.edge_agent.simulator.harness import running_simulator  # noqa: F401  (pty check)


def _fields(line: bytes) -> dict[str, float]:
    return {k: float(v) for k, v in (part.split("=") for part in line.decode().split())}


def test_a_setpoint_written_back_over_the_pty_changes_load_and_bearing_trajectory() -> None:
    # 1 sample per simulated second, 100x: the drive's ramp (1 %/s) is seen within a second.
    settings = SimulatorSettings(
        rate_hz=1.0,
        seed=5,
        format=LineFormat.KEY_VALUE,
        report_load=True,
        timestamps=True,
        speed=100.0,
    )
    opened: list[Any] = []
    ready = threading.Event()
    stop = threading.Event()
    command = LoadCommand()

    def on_ready(path: str) -> None:
        opened.append(serial.serial_for_url(path, timeout=5.0))
        ready.set()

    reports = []
    thread = threading.Thread(
        target=lambda: reports.append(run_simulator(settings, stop, on_ready, 0.0, command))
    )
    thread.start()
    try:
        assert ready.wait(5.0)
        port = opened[0]
        before = [_fields(port.readline()) for _ in range(20)]
        port.write(format_command(0.35))
        port.flush()
        after = [_fields(port.readline()) for _ in range(400)]
    finally:
        stop.set()
        thread.join(5.0)
        opened[0].close()
    assert reports[0].commands_applied == 1
    assert min(f["load"] for f in before) > 0.5
    assert after[-1]["load"] == pytest.approx(0.35, abs=1e-3)
    # The run replays bit for bit from the seed and the recorded commands...
    replay = LoadCommand.replay(command.history)
    frames = list(islice(iter_frames(settings, 0.0, replay), len(before) + len(after)))
    assert [_fields(f.line or b"") for f in frames] == before + after
    # ...and differs from the uncommanded run: the bearing cools towards a lower target.
    free = list(islice(iter_frames(settings), len(frames)))
    assert frames[-1].truth.bearing_temp < free[-1].truth.bearing_temp - 5.0
    assert frames[-1].truth.current < free[-1].truth.current - 2.0


def test_other_lines_on_the_back_channel_are_counted_and_ignored() -> None:
    command = LoadCommand()
    assert not command.feed(b"hello")
    assert not command.feed(b"load=1.7")
    assert command.feed(b"load=0.5\r")
    assert command.take(3) == 0.5
    assert command.feed(b"load=none")
    assert command.take(4) is None
    assert command.rejected == 2
    assert command.history == [(3, 0.5), (4, None)]


@pytest.mark.parametrize("line", ["load=x", "load=-0.1", "speed=0.5", "load=nan"])
def test_bad_commands_name_the_line(line: str) -> None:
    with pytest.raises(SetpointInvalid, match=line):
        parse_command(line)


def test_an_empty_setpoint_releases_the_limit() -> None:
    assert parse_command("load=") is None
    assert format_command(None) == b"load=none\n"


def test_roll_forward_is_the_runs_future_without_noise() -> None:
    settings = SimulatorSettings(
        rate_hz=1.0, seed=11, faults=(parse_fault("overheat@120s,rate=1.5"),)
    )
    command = LoadCommand.replay([(300, 0.4)])
    frames = list(islice(iter_frames(settings, command=command), 1500))
    start = frames[299].state
    future = roll_forward(settings, start, [0.4] * 1200)
    actual = [f.truth.bearing_temp for f in frames[300:]]
    assert len(future.truth["bearing_temp"]) == len(actual) == 1200
    # The load is at the limit (below demand) so only the ambient wander separates them.
    assert max(abs(a - b) for a, b in zip(actual, future.truth["bearing_temp"], strict=True)) < 1.0
    assert future.load[-1] == pytest.approx(0.4)
    unlimited = roll_forward(settings, start, [None] * 1200)
    assert unlimited.truth["bearing_temp"][-1] > future.truth["bearing_temp"][-1] + 5.0


def test_roll_forward_reports_calibration_drift_on_top_of_the_truth() -> None:
    settings = SimulatorSettings(rate_hz=1.0, seed=2, faults=(parse_fault("drift@60s,rate=0.5"),))
    frames = list(islice(iter_frames(settings), 100))
    future = roll_forward(settings, frames[-1].state, [None] * 120)
    offset = future.reported["bearing_temp"] - future.truth["bearing_temp"]
    assert offset[0] == pytest.approx(0.5 * 40 / 60)
    assert offset[-1] == pytest.approx(0.5 * 159 / 60)
    with pytest.raises(ValueError, match="at least one"):
        roll_forward(settings, frames[-1].state, [])
