"""`edge-agent simulate`: the arguments and the command (wired into edge_agent.cli)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from edge_agent.errors import EdgeAgentError
from edge_agent.simulator.device import LINK_FAULTS, run_simulator
from edge_agent.simulator.errors import PtyUnavailable, SimulatorSettingsInvalid
from edge_agent.simulator.faults import fault_argument
from edge_agent.simulator.modbus_pump import modbus_argument, serve_modbus_pump
from edge_agent.simulator.pump import SimulatorSettings
from edge_agent.sources.lineproto import LineFormat

__all__ = ["add_simulate_arguments", "run_simulate", "settings_from_args"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options (docs/simulator.md) to a (sub)parser."""
    parser.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="lines per second")
    parser.add_argument(
        "--format", choices=[f.value for f in LineFormat], default="csv", help="line format"
    )
    parser.add_argument(
        "--fault",
        type=fault_argument,
        action="append",
        default=[],
        metavar="SPEC",
        help="KIND@START[:DURATION][,KEY=VALUE]..., repeatable; KIND: overheat, wear, drift, "
        "spike, stuck, dropout, garbage, vanish (e.g. overheat@60s, vanish@30s:5s)",
    )
    parser.add_argument("--link", type=Path, help="symlink kept pointing at the current pty")
    parser.add_argument("--seed", type=int, default=0, help="the series depends only on it")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--timestamps", action="store_true", help="print the device's UNIX time as field ts"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="fast-forward: X simulated seconds per second (needs --timestamps; with "
        "--duration the timestamps start that long ago, so they end near now)",
    )
    parser.add_argument(
        "--report-load",
        action="store_true",
        help="print the actual load (0..1) as the last field load; the host sets the load "
        "limit by writing load=0.6 (or load=none) back to the port",
    )
    parser.add_argument(
        "--epoch",
        type=float,
        metavar="UNIX_S",
        help="the device time of sample 0 with --timestamps (default: now, or at --speed "
        "with --duration that long ago); a fast-forward must not run ahead of the clock",
    )
    parser.add_argument(
        "--modbus",
        type=modbus_argument,
        metavar="rtu|tcp:PORT",
        help="serve the pump as a Modbus slave instead of printing lines: RTU on a pty "
        "pair (needs socat; --link names the master's end) or TCP on 127.0.0.1:PORT; "
        "the load setpoint is holding register 16 (x1000), docs/simulator.md",
    )
    parser.add_argument("--unit", type=int, default=1, help="the Modbus unit id (--modbus)")
    parser.add_argument(
        "--link-faults-real-time",
        action="store_true",
        help="at --speed, play dropout, garbage and vanish at 1x: the reader judges "
        "silence on its own clock (bench/faults.py)",
    )


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    """Raises SimulatorSettingsInvalid for out-of-range values."""
    return SimulatorSettings(
        rate_hz=args.rate,
        format=LineFormat(args.format),
        seed=args.seed,
        faults=tuple(args.fault),
        link=args.link,
        duration_s=args.duration,
        timestamps=args.timestamps,
        speed=args.speed,
        report_load=args.report_load,
    )


def _epoch(settings: SimulatorSettings, given: float | None) -> float | None:
    if given is not None:
        return given
    # A cloud refuses readings from its future: a fast-forwarded run of known length
    # is placed in the past.
    if settings.speed > 1 and settings.duration_s is not None:
        return time.time() - settings.duration_s
    return None


def run_simulate(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C / SIGTERM or ``--duration``. Exit codes: 0 done,
    1 no pty on this OS, 2 bad arguments."""
    try:
        settings = settings_from_args(args)
    except SimulatorSettingsInvalid as exc:
        print(f"edge-agent simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.modbus is not None:
        return _run_modbus(settings, args)
    for fault in settings.faults:
        onset = fault.first_sample(settings.rate_hz)
        print(f"fault {fault} from sample {onset} (t={onset / settings.rate_hz:g} s)")
    stop = threading.Event()

    def on_ready(path: str) -> None:
        link = f" (link {settings.link})" if settings.link else ""
        print(f"device at {path}{link}: {settings.rate_hz:g} lines/s, {settings.format.value}")
        sys.stdout.flush()  # another process may be waiting for this line

    try:
        with _stop_on_signals(stop):
            real_time = LINK_FAULTS if args.link_faults_real_time else frozenset()
            report = run_simulator(
                settings, stop, on_ready, epoch=_epoch(settings, args.epoch), real_time=real_time
            )
    except SimulatorSettingsInvalid as exc:
        print(f"edge-agent simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PtyUnavailable as exc:
        print(f"edge-agent simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"stopped after {report.frames} samples: {report.lines_written} lines written, "
        f"{report.lines_dropped_buffer_full} dropped (nobody reading), "
        f"{report.lines_withheld} withheld (dropouts), {report.vanishes} vanish(es), "
        f"{report.commands_applied} load command(s) applied"
    )
    return EXIT_OK


def _run_modbus(settings: SimulatorSettings, args: argparse.Namespace) -> int:
    if settings.speed != 1.0 or not 1 <= args.unit <= 247:
        print(
            "edge-agent simulate: --modbus runs at 1x (a master stamps readings with its "
            "own clock) with --unit in 1..247",
            file=sys.stderr,
        )
        return EXIT_USAGE
    stop = threading.Event()

    def announce(where: str) -> None:
        print(f"{where}: {settings.rate_hz:g} samples/s")
        sys.stdout.flush()  # another process may be waiting for this line

    try:
        with _stop_on_signals(stop):
            slave = serve_modbus_pump(settings, args.modbus, args.unit, stop, announce)
    except EdgeAgentError as exc:
        print(f"edge-agent simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"stopped: {slave.accepted} setpoint write(s) taken, {slave.rejected} refused; "
        f"setpoints {slave.command.history}"
    )
    return EXIT_OK


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (a clean shutdown removes the link); signal handlers
    can only be installed from the main thread, elsewhere the caller sets ``stop``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
