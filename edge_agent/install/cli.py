"""Arguments of `edge-agent install` and `edge-agent uninstall` (also
``python3 -m edge_agent.install [install|uninstall] ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_agent import __version__
from edge_agent.errors import InstallFailed
from edge_agent.install.layout import Layout
from edge_agent.install.steps import Options, StepResult, install, uninstall


def add_install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("/"), help="install under this folder")
    parser.add_argument(
        "--package",
        default=f"edgetwin=={__version__}",
        help="what pip installs into the venv: a requirement, a wheel or a folder",
    )
    parser.add_argument(
        "--pip-option", action="append", default=[], help="passed to pip install (repeatable)"
    )
    parser.add_argument("--python", default=None, help="interpreter for the venv (python3)")
    parser.add_argument("--name", default=None, help="device name in the new config (hostname)")
    parser.add_argument("--serial-port", default="/dev/ttyUSB0", help="for the new config")
    parser.add_argument("--no-start", action="store_true", help="enable, but do not start")


def add_uninstall_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", type=Path, default=Path("/"), help="the folder it was installed under"
    )
    parser.add_argument(
        "--purge", action="store_true", help="also remove config, data and the user"
    )


def run_install(args: argparse.Namespace) -> int:
    opts = Options(package=args.package, pip_options=list(args.pip_option))
    if args.python:
        opts.python = args.python
    elif Path("/usr/bin/python3").exists():
        # The system interpreter, not whichever venv runs this: the service's venv must
        # not depend on another venv that may be removed.
        opts.python = "/usr/bin/python3"
    if args.name:
        opts.device_name = args.name
    opts.serial_port = args.serial_port
    opts.start = not args.no_start
    return _report(lambda: install(Layout(args.root), opts))


def run_uninstall(args: argparse.Namespace) -> int:
    return _report(lambda: uninstall(Layout(args.root), args.purge))


def _report(action: Callable[[], list[StepResult]]) -> int:
    try:
        results = action()
    except InstallFailed as exc:
        print(f"edge-agent: install failed: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.step:8s} {r.outcome.value:9s} {r.detail}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m edge_agent.install")
    sub = parser.add_subparsers(dest="command")
    add_install_arguments(sub.add_parser("install"))
    add_uninstall_arguments(sub.add_parser("uninstall"))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in {"install", "uninstall", "-h", "--help"}:
        argv.insert(0, "install")
    args = parser.parse_args(argv)
    return run_install(args) if args.command == "install" else run_uninstall(args)
