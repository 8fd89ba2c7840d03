"""The simulator on a real pty, read back through real pyserial."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import serial

from edge_agent.simulator import (
    SimulatorSettings,
    SimulatorSettingsInvalid,
    generate_series,
    parse_fault,
    run_simulator,
)
from tests.edge_agent.simulator.harness import running_simulator


def read_lines(port: Any, count: int) -> list[bytes]:
    lines = []
    for _ in range(count):
        line = port.readline()
        assert line.endswith(b"\n"), "timed out waiting for a line"
        lines.append(line)
    return lines


def test_writes_the_ground_truth_bytes_in_order() -> None:
    settings = SimulatorSettings(rate_hz=200, seed=9)
    opened: list[Any] = []
    ready = threading.Event()
    stop = threading.Event()

    def on_ready(path: str) -> None:  # called before the first line is written
        opened.append(serial.serial_for_url(path, timeout=5.0))
        ready.set()

    reports = []
    thread = threading.Thread(
        target=lambda: reports.append(run_simulator(settings, stop, on_ready))
    )
    thread.start()
    expected = [f.line for f in generate_series(settings, 0.25)]
    try:
        assert ready.wait(5.0)
        # Read before stopping: closing the pty (an unplug) discards unread bytes.
        got = read_lines(opened[0], len(expected))
    finally:
        stop.set()
        thread.join(5.0)
        opened[0].close()
    assert got == expected
    assert reports[0].lines_written >= len(expected) == 50


def test_fast_forward_prints_simulated_time_from_the_epoch() -> None:
    # 1 sample per simulated 10 s, 500x: 50 lines a second of wall time, stamped 10 s apart.
    settings = SimulatorSettings(rate_hz=0.1, seed=3, timestamps=True, speed=500.0)
    opened: list[Any] = []
    ready = threading.Event()
    stop = threading.Event()

    def on_ready(path: str) -> None:
        opened.append(serial.serial_for_url(path, timeout=5.0))
        ready.set()

    epoch = 1_700_000_000.0
    thread = threading.Thread(target=run_simulator, args=(settings, stop, on_ready, epoch))
    thread.start()
    try:
        assert ready.wait(5.0)
        got = read_lines(opened[0], 20)
    finally:
        stop.set()
        thread.join(5.0)
        opened[0].close()
    stamps = [float(line.split(b",")[0]) for line in got]
    assert stamps == [epoch + 10.0 * i for i in range(20)]
    # The sensor fields are the generator's (whose own timestamps count from 0).
    expected = [f.line for f in generate_series(settings, 200.0)]
    assert [line.split(b",")[1:] for line in got] == [
        line.split(b",")[1:] for line in expected if line is not None
    ]


def test_vanish_closes_the_pty_and_repoints_the_link(tmp_path: Path) -> None:
    link = tmp_path / "usb-pump"
    settings = SimulatorSettings(
        rate_hz=100, link=link, faults=(parse_fault("vanish@0.2s:0.2s"),), duration_s=0.6
    )
    with running_simulator(settings) as sim:
        assert link.is_symlink() and str(link.resolve()) == sim.paths[0]
        port = serial.serial_for_url(str(link), timeout=5.0)
        try:
            read_lines(port, 3)
            with pytest.raises(serial.SerialException):  # as on a USB unplug
                while True:
                    port.read(1)
        finally:
            port.close()
        while len(sim.paths) < 2:  # the device comes back as a new pty
            assert sim.appeared.wait(5.0)
        assert link.is_symlink() and str(link.resolve()) == sim.paths[1]
        port = serial.serial_for_url(str(link), timeout=5.0)
        try:
            assert read_lines(port, 2)
        finally:
            port.close()
    assert sim.report is not None
    assert sim.report.vanishes == 1
    assert sim.report.samples_while_vanished == 20
    assert not link.exists()  # removed when the simulator stops, like an unplugged device


def test_stop_ends_the_run(tmp_path: Path) -> None:
    with running_simulator(SimulatorSettings(rate_hz=10, link=tmp_path / "d")) as sim:
        pass
    assert sim.report is not None and sim.report.frames >= 1
    assert not (tmp_path / "d").exists()


def test_lines_nobody_reads_are_dropped_and_counted() -> None:
    settings = SimulatorSettings(rate_hz=10_000, duration_s=0.5)
    report = run_simulator(settings, threading.Event())
    assert report.lines_dropped_buffer_full > 0
    assert report.lines_written + report.lines_dropped_buffer_full == report.frames == 5000


def test_dropout_lines_are_withheld() -> None:
    settings = SimulatorSettings(
        rate_hz=100, duration_s=0.3, faults=(parse_fault("dropout@0.1s:0.1s"),)
    )
    report = run_simulator(settings, threading.Event())
    assert report.lines_withheld == 10
    assert report.lines_written + report.lines_dropped_buffer_full == 20


def test_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me", encoding="utf-8")
    with pytest.raises(SimulatorSettingsInvalid, match="not a symlink"):
        run_simulator(SimulatorSettings(link=precious, duration_s=0.1), threading.Event())
    assert precious.read_text(encoding="utf-8") == "keep me"
