"""`cloud-sync` command line.

Exit codes: 0 success; 1 the operation was refused (a device name taken or unknown);
2 bad usage or a bad config (nothing started); 3 the database could not be reached.

The database URL comes from ``--database-url``, else $CLOUD_SYNC_DATABASE_URL, else the
config's [database] url, else ``sqlite:///./cloud-sync.db``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from cloud_sync import __version__
from cloud_sync.config import CloudConfig, load_config
from cloud_sync.errors import DatabaseUnavailable, DeviceExists, DeviceNotFound
from cloud_sync.service import ServiceNotifier
from edgetwin_common import extras, logs
from edgetwin_common.errors import ConfigInvalid

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3


def _parser() -> argparse.ArgumentParser:
    # Here, not at the top: they need the cloud extra, which main() names when missing.
    from cloud_sync.releases.cli import add_group_parsers, add_release_parsers
    from cloud_sync.training.cli import add_retrain_parser, add_twin_finetune_parser

    parser = argparse.ArgumentParser(
        prog="cloud-sync", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"cloud-sync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, help="cloud.toml (default: all defaults)")
        p.add_argument("--database-url", help="SQLAlchemy URL (sqlite:///file, postgresql://…)")
        return p

    serve = with_db(sub.add_parser("serve", help="run the HTTP service (migrates first)"))
    serve.add_argument("--host", help="override [server] host")
    serve.add_argument("--port", type=int, help="override [server] port")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug also shows one line per HTTP request",
    )
    serve.add_argument(
        "--log-format",
        default="json",
        choices=["json", "text"],
        help="json: one object per line (journald, log shippers); text: for a terminal",
    )

    check = sub.add_parser("check-config", help="validate a config file; exit 2 on problems")
    check.add_argument("config", type=Path, help="cloud.toml (`cloud-sync init-config` writes one)")
    init = sub.add_parser("init-config", help="write a commented cloud.toml to start from")
    init.add_argument(
        "path", type=Path, nargs="?", default=Path("cloud.toml"), help="default: ./cloud.toml"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    with_db(db_sub.add_parser("upgrade", help="migrate to the newest schema (idempotent)"))
    with_db(db_sub.add_parser("current", help="print the schema revision"))

    devices = sub.add_parser("devices", help="the device registry")
    dev_sub = devices.add_subparsers(dest="devices_command", required=True)
    add = with_db(dev_sub.add_parser("add", help="register a device; prints its token once"))
    add.add_argument("name")
    rotate = with_db(dev_sub.add_parser("rotate-token", help="new token; the old one dies"))
    rotate.add_argument("name")
    with_db(dev_sub.add_parser("list", help="names, last seen, twin versions"))
    add_group_parsers(dev_sub, with_db)
    add_release_parsers(sub, with_db)

    sub.add_parser("new-admin-token", help="make an admin token; prints it and the line for [auth]")
    add_retrain_parser(sub, with_db)
    add_twin_finetune_parser(sub, with_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:
        return extras.report(exc, "cloud-sync", "cloud")


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args.config)
        if args.command == "init-config":
            return _init_config(args.path, args.force)
        if args.command == "new-admin-token":
            return _new_admin_token()
        if args.command == "releases" and args.releases_command == "keygen":
            from cloud_sync.releases.cli import run_keygen

            return run_keygen(args.directory, args.stem)
        config = load_config(args.config, args.database_url)
        if args.command == "serve":
            return _serve(
                config, args.host, args.port, args.log_level, args.log_format, args.config
            )
        if args.command == "retrain":
            from cloud_sync.training.cli import run_retrain

            return run_retrain(args, config, _migrated_engine(config))
        if args.command == "twin-finetune":
            from cloud_sync.training.cli import run_twin_finetune

            return run_twin_finetune(args, config, _migrated_engine(config))
        if args.command == "db":
            return _db(config, args.db_command)
        if args.command == "releases":
            return _releases(config, args)
        if getattr(args, "devices_command", None) == "group":
            return _releases(config, args)
        return _devices(config, args.devices_command, getattr(args, "name", None))
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except DatabaseUnavailable as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except (DeviceExists, DeviceNotFound) as exc:
        print(exc.detail, file=sys.stderr)
        return EXIT_REFUSED


def _check_config(path: Path) -> int:
    config = load_config(path)
    admin = "admin token set" if config.auth.admin_sha256() else "no admin token: fleet routes off"
    print(
        f"OK {path}: database {_safe_url(config.database.url)}, "
        f"listen {config.server.host}:{config.server.port}, {admin}"
    )
    return EXIT_OK


def _init_config(path: Path, force: bool) -> int:
    from importlib import resources

    if path.exists() and not force:
        print(f"cloud-sync init-config: {path} exists (--force overwrites it)", file=sys.stderr)
        return EXIT_USAGE
    example = resources.files("cloud_sync").joinpath("examples", "cloud.toml")
    path.write_text(example.read_text("utf-8"), encoding="utf-8")
    print(f"wrote {path}: edit it, then `cloud-sync check-config {path}`")
    return EXIT_OK


def _new_admin_token() -> int:
    from cloud_sync.registry import new_token, token_sha256

    token = new_token()
    print(token)
    print(
        f'# for cloud.toml [auth]:\nadmin_token_sha256 = "{token_sha256(token)}"', file=sys.stderr
    )
    return EXIT_OK


def _migrated_engine(config: CloudConfig) -> Engine:
    from sqlalchemy.exc import OperationalError

    from cloud_sync.db.session import make_engine, upgrade

    engine = make_engine(config.database.url, config.database.pool_size)
    try:
        upgrade(engine)
    except OperationalError as exc:
        raise DatabaseUnavailable(str(exc.orig)) from exc
    return engine


def _db(config: CloudConfig, command: str) -> int:
    from sqlalchemy.exc import OperationalError

    from cloud_sync.db.session import current_revision, head_revision, make_engine

    if command == "upgrade":
        engine = _migrated_engine(config)
        print(
            f"database {_safe_url(config.database.url)} at revision {current_revision(engine)}"
            f" (head {head_revision()})"
        )
        engine.dispose()
        return EXIT_OK
    engine = make_engine(config.database.url)
    try:
        print(current_revision(engine) or "(not migrated)")
    except OperationalError as exc:
        raise DatabaseUnavailable(str(exc.orig)) from exc
    finally:
        engine.dispose()
    return EXIT_OK


def _releases(config: CloudConfig, args: argparse.Namespace) -> int:
    from cloud_sync.releases.cli import run_groups, run_releases

    engine = _migrated_engine(config)
    try:
        if args.command == "releases":
            return run_releases(args, config, engine)
        return run_groups(args, engine)
    finally:
        engine.dispose()


def _devices(config: CloudConfig, command: str, name: str | None) -> int:
    from pydantic import TypeAdapter, ValidationError

    from cloud_sync.fleet import overview
    from cloud_sync.registry import DeviceName, add_device, rotate_token

    engine = _migrated_engine(config)
    try:
        if command == "list":
            for row in overview(engine, config.fleet):
                reported = (
                    "nothing reported yet"
                    if row.reported_version is None
                    else f"reported v{row.reported_version}"
                )
                print(
                    f"{row.name}\t{row.health.value}\tseq {row.last_sequence}\t"
                    f"{reported}\tdesired v{row.desired_version}"
                )
            return EXIT_OK
        assert name is not None
        try:
            TypeAdapter(DeviceName).validate_python(name)
        except ValidationError:
            print(
                f"bad device name {name!r}: 1-64 of A-Z a-z 0-9 _ . - "
                "(starting with a letter or digit)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        token = add_device(engine, name) if command == "add" else rotate_token(engine, name)
        # The token alone on stdout (scriptable); the advice on stderr.
        print(token)
        if config.mqtt.password_file is not None and config.mqtt.acl_file is not None:
            from cloud_sync.mqtt.credentials import broker_credentials

            print(broker_credentials(config.mqtt, name, token), file=sys.stderr)
        print(
            f"device {name!r}: store this token on the device now; it is not shown again.",
            file=sys.stderr,
        )
        return EXIT_OK
    finally:
        engine.dispose()


def _serve(
    config: CloudConfig,
    host: str | None,
    port: int | None,
    log_level: str,
    log_format: str = "json",
    config_path: Path | None = None,
) -> int:
    from cloud_sync.http.app import create_app
    from cloud_sync.jobs import ServiceJob, serve_jobs

    logs.configure(log_level, log_format)
    engine = _migrated_engine(config)
    if config.auth.admin_sha256() is None:
        log.warning("no [auth] admin token: devices can sync, fleet routes answer 401")
    jobs: list[ServiceJob] = [*serve_jobs(config, engine, config_path)]
    presence = None
    if config.mqtt.enabled:
        from cloud_sync.mqtt.bridge import MqttBridge

        bridge = MqttBridge(config.mqtt, engine, config.ingest.max_future_skew_s)
        jobs.append(bridge)
        presence = bridge.presence.is_online
    app = create_app(config, engine, jobs=jobs, presence=presence)
    server = _GracefulServer(
        uvicorn.Config(
            app,
            host=host or config.server.host,
            port=config.server.port if port is None else port,
            log_level=log_level,
            log_config=None,  # uvicorn's records go through the root handler: one format
            proxy_headers=True,
            forwarded_allow_ips=config.server.forwarded_allow_ips,
        )
    )
    server.run()
    engine.dispose()
    return EXIT_OK


class _GracefulServer(uvicorn.Server):
    """uvicorn that exits 0 after a SIGTERM/SIGINT shutdown. Recent uvicorn re-raises the
    caught signal once it has shut down, which makes a clean stop look like a crash to
    systemd and skips our own cleanup. Under systemd it also speaks sd_notify
    (cloud_sync/service.py)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.service = ServiceNotifier.from_env()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.service.ready(f"listening on {self.config.host}:{self.config.port}")

    async def on_tick(self, counter: int) -> bool:
        self.service.tick()
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.stopping()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
