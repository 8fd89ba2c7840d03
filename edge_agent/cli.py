"""`edge-agent` command line.

Exit codes: 0 success; 1 a model bundle was rejected; 2 bad usage or a bad config
(nothing started); 3 the agent failed at start (model, store or port).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent import __version__
from edge_agent.errors import BackendUnavailable
from edge_agent.model.shipped import DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY
from edgetwin_common.errors import ConfigInvalid
from edgetwin_contracts.errors import BundleRejected, KeyInvalid

if TYPE_CHECKING:
    from edge_agent.config import LoadedConfig
    from edge_agent.pipeline.backtest import BacktestReport

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_START_FAILED = 3


_CONFIG_HELP = "the agent's TOML config (`edge-agent init-config` writes one)"
_BACKEND_HELP = "inference backend: auto, ai-edge-litert or tflite-runtime"
_KEY_HELP = "the release public key (PEM) that signed the bundle (default: the shipped model's)"


def _add_config(parser: argparse.ArgumentParser, default: Path | None = None) -> None:
    """CONFIG as a positional or as --config: both spellings, on every command."""
    where = f" (default: {default})" if default else ""
    parser.add_argument("config", nargs="?", type=Path, help=_CONFIG_HELP + where)
    parser.add_argument(
        "--config", dest="config_option", type=Path, metavar="CONFIG", help="same as CONFIG"
    )
    parser.set_defaults(config_default=default)


def _config_of(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Path | None:
    given = [p for p in (args.config, args.config_option) if p is not None]
    if len(given) == 2 and given[0] != given[1]:
        parser.error(f"two configs given: {given[0]} and --config {given[1]}")
    default: Path | None = args.config_default
    return given[0] if given else default


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_config(sub.add_parser("run", help="run the agent"))
    _add_config(sub.add_parser("check-config", help="validate a config file; exit 2 on problems"))
    init = sub.add_parser(
        "init-config", help="write a commented config to start from (one serial source)"
    )
    init.add_argument(
        "path", type=Path, nargs="?", default=Path("agent.toml"), help="default: ./agent.toml"
    )
    init.add_argument("--name", default=None, help="device name (default: the hostname)")
    init.add_argument(
        "--serial-port", default="/dev/ttyUSB0", help="the microcontroller's serial port"
    )
    init.add_argument(
        "--data-dir", default=None, help="where the store lives (default: /var/lib/edge-agent)"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    _add_replay(sub.add_parser("replay", help="backtest: run the pipeline over a CSV"))

    from edge_agent.install.cli import add_install_arguments, add_uninstall_arguments

    add_install_arguments(
        sub.add_parser("install", help="install as a systemd service (venv, user, config, unit)")
    )
    add_uninstall_arguments(sub.add_parser("uninstall", help="remove the service and venv"))
    doctor = sub.add_parser("doctor", help="check this device and print the fix for each problem")
    _add_config(doctor, default=Path("/etc/edge-agent/agent.toml"))
    doctor.add_argument("--user", default=None, help="the service user (default: edge-agent)")

    from edge_agent.simulator.cli import add_simulate_arguments

    add_simulate_arguments(sub.add_parser("simulate", help="simulate a pump on a pty"))

    demo = sub.add_parser(
        "demo", help="simulator + agent + cloud end to end, then a summary (cloud extra)"
    )
    demo.add_argument("--duration", type=float, default=60.0, help="seconds (>= 10)")
    demo.add_argument("--rate", type=float, default=20.0, help="simulated lines per second")
    demo.add_argument(
        "--workdir", type=Path, default=Path("out/demo-agent"), help="configs, store and logs"
    )
    demo.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free port)")
    demo.add_argument(
        "--no-loop",
        action="store_true",
        help="only the live part (skip the fast-forwarded retrain and model update)",
    )

    _add_model(sub.add_parser("model", help="model bundles on this device"))
    return parser


def _add_replay(replay: argparse.ArgumentParser) -> None:
    _add_config(replay)
    replay.add_argument(
        "--csv",
        type=Path,
        help="timestamp + value column(s); default: the path of the config's replay source",
    )
    replay.add_argument("--out", type=Path, help="per-sample results CSV")
    replay.add_argument(
        "--nab-out", type=Path, help="NAB result file (timestamp,value,anomaly_score per row)"
    )
    replay.add_argument(
        "--plot",
        type=Path,
        help="draw values, forecasts, scores and alarms to this PNG (needs matplotlib)",
    )
    replay.add_argument(
        "--update-bundle", type=Path, help="a model release to take during the replay"
    )
    replay.add_argument("--update-key", type=Path, help="its release public key (PEM)")
    replay.add_argument(
        "--update-at", help="data time of the update (ISO 8601 or UNIX s); default: the start"
    )
    replay.add_argument(
        "--sample", action="store_true", help="the shipped sample and its config (smoke test)"
    )


def _add_model(model: argparse.ArgumentParser) -> None:
    model_sub = model.add_subparsers(dest="model_command", required=True)
    verify = model_sub.add_parser(
        "verify", help="verify a bundle (signature, hash, tensors, golden vectors)"
    )
    verify.add_argument(
        "bundle", type=Path, nargs="?", default=DEFAULT_BUNDLE, help="default: the shipped model"
    )
    verify.add_argument("--public-key", type=Path, default=None, help=_KEY_HELP)
    verify.add_argument("--backend", default="auto", help=_BACKEND_HELP)
    model_demo = model_sub.add_parser(
        "demo", help="the shipped model alone on a pump series with faults"
    )
    model_demo.add_argument("--samples", type=int, default=3000, help="samples (>= 200)")
    model_demo.add_argument("--backend", default="auto", help=_BACKEND_HELP)
    bench = model_sub.add_parser("bench", help="per-sample inference latency on this device")
    bench.add_argument(
        "bundle", type=Path, nargs="?", default=DEFAULT_BUNDLE, help="default: the shipped model"
    )
    bench.add_argument("--public-key", type=Path, default=None, help=_KEY_HELP)
    bench.add_argument("--samples", type=int, default=5000, help="forecasts to time (>= 100)")
    bench.add_argument("--backend", default="auto", help=_BACKEND_HELP)


def _verify(bundle: Path, public_key_path: Path, backend: str) -> int:
    from edge_agent.model.bundle import load_bundle
    from edgetwin_contracts.signing import load_public_key

    model = load_bundle(bundle, load_public_key(public_key_path), backend=backend)
    m = model.manifest
    print(f"OK {bundle}: {m.model.name} {m.model.version} on {model.backend}")
    print(f"  sha256 {m.file.sha256} ({m.file.size_bytes} bytes), key {m.signing.key_id}")
    print(f"  window {m.input.window_length}, horizons {m.output.horizons}")
    print(f"  {len(m.golden.vectors)} golden vectors reproduce within {m.golden.tolerance_lsb} LSB")
    return EXIT_OK


def _check_config(path: Path) -> int:
    from edge_agent.config import load_config

    loaded = load_config(path)
    c = loaded.config
    print(
        f"{path}: OK ({len(c.sources)} source(s), {len(c.channels)} channel(s), "
        f"{len(c.alarms)} alarm rule(s), {len(c.actions)} action(s))"
    )
    return EXIT_OK


def _run(path: Path) -> int:
    from edge_agent.config import load_config
    from edge_agent.daemon.agent import Agent
    from edgetwin_common import logs

    loaded = load_config(path)
    logs.configure(loaded.config.agent.log_level, loaded.config.agent.log_format)
    try:
        agent = Agent(loaded)
    except (BundleRejected, KeyInvalid, BackendUnavailable) as exc:
        if loaded.config.agent.on_model_failure != "serve-status" or not loaded.config.http.enabled:
            raise
        _serve_without_model(loaded, exc)
        raise

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await agent.run(stop)

    asyncio.run(main())
    return EXIT_OK


def _serve_without_model(loaded: LoadedConfig, exc: Exception) -> None:
    """Serve the status page that says why until SIGINT/SIGTERM (then the caller
    re-raises, and the exit code still tells the model failed)."""
    from edge_agent.daemon.nomodel import NoModelAgent

    view = NoModelAgent(loaded, str(exc))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await view.run(stop)

    asyncio.run(main())


def _replay(args: argparse.Namespace) -> int:
    from edge_agent.config import load_config
    from edge_agent.pipeline.backtest import ModelUpdate, run_backtest
    from edge_agent.pipeline.plot import matplotlib_missing, plot_results
    from edgetwin_common.timestamps import parse_timestamp

    if args.plot is not None and (why := matplotlib_missing()) is not None:
        print(f"edge-agent replay: {why}", file=sys.stderr)
        return EXIT_USAGE
    loaded = load_config(args.config)
    update = None
    if args.update_bundle is not None:
        at = parse_timestamp(args.update_at) if args.update_at else float("-inf")
        if args.update_key is None or at is None:
            print(
                "edge-agent replay: --update-bundle needs --update-key and a valid --update-at",
                file=sys.stderr,
            )
            return EXIT_USAGE
        update = ModelUpdate(at, args.update_bundle, args.update_key)
    with tempfile.TemporaryDirectory(prefix="edge-agent-replay-") as tmp:
        # The picture is drawn from the results file: a temporary one without --out.
        out = args.out or (Path(tmp) / "results.csv" if args.plot is not None else None)
        try:
            report = run_backtest(loaded, args.csv, out, nab_out=args.nab_out, update=update)
        except ValueError as exc:
            print(f"edge-agent replay: {exc}", file=sys.stderr)
            return EXIT_USAGE
        _print_report(report)
        if args.plot is not None and out is not None:
            plot_results(out, args.plot, f"edge-agent replay: {report.model}")
            print(f"plot: {args.plot}")
    if args.out is not None:
        print(f"results: {args.out}")
    if args.nab_out is not None:
        print(f"NAB results: {args.nab_out}")
    return EXIT_OK


def _print_report(report: BacktestReport) -> None:
    print(f"model: {report.model}")
    print(
        f"replayed {report.readings} readings ({report.samples} samples through the model) "
        f"in {report.elapsed_s:.2f} s: {report.samples_per_s:,.0f} samples/s"
    )
    if report.skipped:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items()))
        print(f"rows skipped by the reader: {skipped}")
    if report.rejected:
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(report.rejected.items()))
        print(f"rejected by cleaning: {rejected}")
    print(f"alarms raised: {report.raised_total}")
    for event in report.raised:
        a = event.alarm
        at = datetime.fromtimestamp(a.raised_at, UTC).isoformat()
        print(f"  {at} {a.severity.value:8s} {a.rule} on {a.channel}: {a.message}")
    if report.raised_total > len(report.raised):
        more = report.raised_total - len(report.raised)
        print(f"  ... and {more} more (see the results CSV)")
    if report.model_update is not None:
        print(f"model update: {report.model_update}")


def _init_config(args: argparse.Namespace) -> int:
    import socket

    from edge_agent.install.layout import DATA_DIR, config_template

    path: Path = args.path
    if path.exists() and not args.force:
        print(f"edge-agent init-config: {path} exists (--force overwrites it)", file=sys.stderr)
        return EXIT_USAGE
    name = args.name or socket.gethostname() or "edge-agent"
    path.write_text(
        config_template(name, args.serial_port, args.data_dir or DATA_DIR), encoding="utf-8"
    )
    print(f"wrote {path}: edit the serial port, then `edge-agent check-config {path}`")
    return EXIT_OK


def _model_command(args: argparse.Namespace) -> int:
    key = args.public_key or DEFAULT_PUBLIC_KEY
    if args.model_command == "verify":
        return _verify(args.bundle, key, args.backend)
    if args.model_command == "demo":
        from edge_agent.model import demo as model_demo

        if args.samples < 200:
            print("edge-agent model demo: --samples must be >= 200", file=sys.stderr)
            return EXIT_USAGE
        return model_demo.main(args.samples, args.backend)
    from edge_agent.model import bench as model_bench

    if args.samples < 100:
        print("edge-agent model bench: --samples must be >= 100", file=sys.stderr)
        return EXIT_USAGE
    return model_bench.main(args.bundle, key, args.samples, args.backend)


def _own_bundle_hint(args: argparse.Namespace) -> None:
    if args.command != "model" or args.model_command == "demo" or args.public_key is not None:
        return
    if Path(args.bundle) != Path(DEFAULT_BUNDLE):
        print(
            "checked with the shipped model's key: a bundle of your own needs its release "
            "key, --public-key KEY.pub (the .pub next to the key `model-export keygen` made)",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "config_option"):
        args.config = _config_of(args, parser)
    try:
        if args.command == "check-config":
            if args.config is None:
                parser.error("check-config needs a config: edge-agent check-config FILE")
            return _check_config(args.config)
        if args.command == "init-config":
            return _init_config(args)
        if args.command == "run":
            if args.config is None:
                parser.error("run needs a config: edge-agent run FILE")
            return _run(args.config)
        if args.command == "replay":
            if args.sample:
                from edge_agent.samples import PUMP_CSV, REPLAY_CONFIG

                args.config = args.config or REPLAY_CONFIG
                args.csv = args.csv or PUMP_CSV
            if args.config is None:
                print("edge-agent replay: give a config (and --csv), or --sample", file=sys.stderr)
                return EXIT_USAGE
            return _replay(args)
        if args.command in {"install", "uninstall"}:
            from edge_agent.install.cli import run_install, run_uninstall

            return run_install(args) if args.command == "install" else run_uninstall(args)
        if args.command == "doctor":
            from edge_agent.doctor.report import run_doctor

            return run_doctor(args.config, args.user)
        if args.command == "simulate":
            from edge_agent.simulator.cli import run_simulate

            return run_simulate(args)
        if args.command == "demo":
            from edgetwin_common import extras

            # The demo runs cloud-sync too: say so before starting anything.
            needs = extras.require("cloud", "edge-agent demo")
            if needs is not None:
                return needs
            import edgetwin_demo as demo

            if args.duration < 10:
                print("edge-agent demo: --duration must be >= 10 s", file=sys.stderr)
                return EXIT_USAGE
            return demo.main(
                args.duration, args.rate, args.workdir, args.port, closed_loop=not args.no_loop
            )
        if args.command == "model":
            return _model_command(args)
    except ConfigInvalid as exc:
        print(f"edge-agent: config {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BundleRejected as exc:
        print(f"REJECTED {exc}", file=sys.stderr)
        _own_bundle_hint(args)
        return EXIT_REJECTED
    except (KeyInvalid, BackendUnavailable) as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    except OSError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
