"""`cloud-sync releases ...` and `cloud-sync devices group ...` (wired in cloud_sync.cli).

Exit codes as the rest of the CLI: 0 done; 1 refused (bad bundle, version exists, no
such release or device, version marked bad); 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from cloud_sync.config import CloudConfig
from cloud_sync.errors import RequestRejected
from cloud_sync.releases.errors import ReleasesNotConfigured

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

WithDb = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def add_release_parsers(sub: argparse._SubParsersAction, with_db: WithDb) -> None:  # type: ignore[type-arg]
    releases = sub.add_parser("releases", help="model and twin releases, staged rollouts")
    rel = releases.add_subparsers(dest="releases_command", required=True)
    publish = with_db(
        rel.add_parser(
            "publish",
            help="store a bundle and start its rollout (a twin bundle: a twin release)",
        )
    )
    publish.add_argument("bundle_dir", type=Path)
    publish.add_argument("--version", required=True, help="release version (dotted)")
    target = publish.add_mutually_exclusive_group()
    target.add_argument("--device", help="release to this one device")
    target.add_argument("--canary-group", help="first to this device group, then the fleet")
    publish.add_argument(
        "--canary-percent", type=int, help="first to this %% of the fleet, then all"
    )
    publish.add_argument("--report", type=Path, help="training report folder to keep with it")
    publish.add_argument(
        "--sign", action="store_true", help="re-sign with [releases] private_key first"
    )
    with_db(rel.add_parser("list", help="releases, newest first"))
    show = with_db(rel.add_parser("show", help="a release and its devices (JSON)"))
    show.add_argument("id", type=int)
    with_db(rel.add_parser("evaluate", help="evaluate rollouts once (for cron)"))
    stop = with_db(rel.add_parser("stop", help="stop a release"))
    stop.add_argument("id", type=int)
    stop.add_argument(
        "--reason", default="stopped by an admin", help="recorded with the release's state"
    )
    back = with_db(rel.add_parser("rollback", help="send a device back to an older release"))
    back.add_argument("device")
    back.add_argument("version")
    back.add_argument("--model", help="model name, if several models have that version")
    back.add_argument(
        "--kind", choices=("model", "twin"), help="model or twin, if both have that version"
    )
    with_db(
        rel.add_parser(
            "copy-to-database",
            help='copy the folder\'s bundles into the database (before store = "database")',
        )
    )
    keygen = rel.add_parser("keygen", help="make the fleet's release key pair")
    keygen.add_argument("directory", type=Path)
    keygen.add_argument("--stem", default="release", help="file stem: <stem>.key, <stem>.pub")


def add_group_parsers(dev_sub: argparse._SubParsersAction, with_db: WithDb) -> None:  # type: ignore[type-arg]
    group = dev_sub.add_parser("group", help="device groups (canary groups)")
    grp = group.add_subparsers(dest="group_command", required=True)
    for verb, text in (("add", "put devices into a group"), ("remove", "take them out")):
        p = with_db(grp.add_parser(verb, help=text))
        p.add_argument("group")
        p.add_argument("devices", nargs="+")
    with_db(grp.add_parser("list", help="groups and their devices"))


def run_releases(args: argparse.Namespace, config: CloudConfig, engine: Engine) -> int:
    from cloud_sync.releases.config import make_store, private_key, read_only_store
    from cloud_sync.releases.model import ReleaseKind
    from cloud_sync.releases.offers import rollback
    from cloud_sync.releases.publish import publish_release
    from cloud_sync.releases.records import get_release, list_releases
    from cloud_sync.releases.rollout import evaluate_rollouts, stop_release

    command = args.releases_command
    try:
        if command == "publish":
            key = private_key(config) if args.sign else None
            if args.sign and key is None:
                print("--sign needs [releases] private_key in the config", file=sys.stderr)
                return EXIT_USAGE
            info = publish_release(
                engine,
                make_store(config, engine),
                args.bundle_dir,
                version=args.version,
                device=args.device,
                canary_group=args.canary_group,
                canary_percent=args.canary_percent,
                report_dir=args.report,
                private_key=key,
            )
            print(
                f"release {info.id}: {info.model_name} {info.version} {info.sha256} "
                f"{info.state} ({info.kind.value})"
            )
            offered = [a.device for a in info.assignments]
            print(f"offered to: {', '.join(offered) or 'no device yet'}", file=sys.stderr)
        elif command == "copy-to-database":
            from cloud_sync.releases.store import BundleStore

            store = read_only_store(config, engine)
            if store.engine is None:
                # The folder may still be copied before the config switches over.
                store = BundleStore(store.root, None, engine)
            copied, refused = store.copy_folder_to_database()
            print(f"copied {len(copied)} bundle(s) from {store.root} into the database")
            for sha in refused:
                print(f"refused {sha}: its bytes do not match its sha256", file=sys.stderr)
            if refused:
                return EXIT_REFUSED
        elif command == "list":
            for r in list_releases(engine):
                target = r.target.get("device") or "fleet"
                print(
                    f"{r.id}\t{r.kind.value}\t{r.model_name}\t{r.version}\t{r.state.value}\t"
                    f"stage {r.stage + 1}/{len(r.stages)}\t{target}\t{r.sha256[:12]}"
                    + (f"\t{r.reason}" if r.reason else "")
                )
        elif command == "show":
            print(json.dumps(get_release(engine, args.id).model_dump(mode="json"), indent=2))
        elif command == "evaluate":
            result = evaluate_rollouts(engine)
            for rid, stage in result.widened:
                print(f"release {rid} widened to stage {stage + 1}")
            for rid, reason in result.stopped:
                print(f"release {rid} stopped: {reason}")
            for rid in result.completed:
                print(f"release {rid} complete")
            for rid, device, reason in result.marked_bad:
                print(f"release {rid} bad on {device}: {reason}")
        elif command == "stop":
            info = stop_release(engine, args.id, args.reason)
            print(f"release {info.id}: {info.state.value}")
        elif command == "rollback":
            kind = None if args.kind is None else ReleaseKind(args.kind)
            info = rollback(engine, args.device, args.version, model_name=args.model, kind=kind)
            print(f"{args.device}: desired {info.kind.value} {info.version} (rollback)")
    except ReleasesNotConfigured as exc:
        print(exc.detail, file=sys.stderr)
        return EXIT_USAGE
    except RequestRejected as exc:
        print(exc.detail, file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def run_keygen(directory: Path, stem: str) -> int:
    from cloud_sync.releases.signing import keygen

    try:
        path = keygen(directory, stem)
    except FileExistsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_REFUSED
    print(path)
    print(
        f'# cloud.toml [releases]: private_key = "{path}", '
        f'public_key = "{path.with_suffix(".pub")}"\n'
        f"# devices get only {path.with_suffix('.pub')}; the .key never leaves this side.",
        file=sys.stderr,
    )
    return EXIT_OK


def run_groups(args: argparse.Namespace, engine: Engine) -> int:
    from cloud_sync.releases.groups import add_to_group, list_groups, remove_from_group

    try:
        if args.group_command == "list":
            for group, members in list_groups(engine).items():
                print(f"{group}\t{' '.join(members)}")
            return EXIT_OK
        change = add_to_group if args.group_command == "add" else remove_from_group
        members = change(engine, args.group, args.devices)
    except RequestRejected as exc:
        print(exc.detail, file=sys.stderr)
        return EXIT_REFUSED
    print(f"{args.group}\t{' '.join(members)}")
    return EXIT_OK
