"""``cloud-sync retrain`` (the CLI side only; cheap to import). ``serve`` runs it on a
schedule as a child process: ``cloud_sync.jobs``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from cloud_sync.config import CloudConfig

EXIT_OK = 0
EXIT_FAILED = 1


def add_retrain_parser(
    sub: Any, with_db: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """``retrain [--device ID ...| --fleet] [--no-progress]``."""
    p = with_db(
        sub.add_parser(
            "retrain",
            help="fleet pretrain, per-device fine-tune, int8, compare, promote",
            description="Exit 0 when every device was retrained or skipped with a reason "
            "(not promoted is not a failure); 1 when a device failed or is unknown.",
        )
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--device", action="append", metavar="ID", help="retrain this device (repeatable)"
    )
    target.add_argument("--fleet", action="store_true", help="retrain every device")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_retrain(args: argparse.Namespace, config: CloudConfig, engine: Engine) -> int:
    """Run a retrain for the parsed arguments; one line per device on stdout."""
    from cloud_sync.training.decision import Verdict
    from cloud_sync.training.retrain import retrain

    try:
        outcome = retrain(
            engine,
            config,
            devices=None if args.fleet else args.device,
            say=lambda line: print(line, file=sys.stderr),
            progress=not args.no_progress,
        )
    finally:
        engine.dispose()
    # Always five columns ("-" where a skipped device has no version or report); a
    # twin's line names its device "twin:<device>".
    lines = [(d.device, d) for d in outcome.decisions]
    lines += [(f"twin:{d.device}", d) for d in outcome.twins]
    for name, d in lines:
        where = d.report_dir if d.report_dir is not None else "-"
        print(f"{name}\t{d.verdict.value}\t{d.version or '-'}\t{where}\t{d.reason}")
    counts = Counter(d.verdict for d in outcome.decisions)
    twins = Counter(d.verdict for d in outcome.twins)
    print(
        f"retrain: {len(outcome.decisions)} device(s) in {outcome.seconds:.0f} s: "
        + ", ".join(f"{n} {v.value}" for v, n in sorted(counts.items()))
        + (
            "; twins: " + ", ".join(f"{n} {v.value}" for v, n in sorted(twins.items()))
            if twins
            else ""
        ),
        file=sys.stderr,
    )
    return EXIT_FAILED if counts[Verdict.FAILED] or twins[Verdict.FAILED] else EXIT_OK


def add_twin_finetune_parser(
    sub: Any, with_db: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """``twin-finetune DEVICE --version V [--epochs N]``."""
    p = with_db(
        sub.add_parser(
            "twin-finetune",
            help="fine-tune the default twin on a device's synced summaries (docs/twin.md)",
            description="Writes the signed twin bundle to <reports_dir>/<device>/twin, where "
            "POST /v1/devices/{name}/whatif finds it. Signs with [releases] private_key. "
            "Exit 0 on success, 1 when the device has too little synced data.",
        )
    )
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("--version", required=True, help="release version of the twin, e.g. 1.0.1")
    p.add_argument("--epochs", type=int, default=10, help="fine-tune epochs (default 10)")


def run_twin_finetune(args: argparse.Namespace, config: CloudConfig, engine: Engine) -> int:
    from cloud_sync.releases.config import private_key
    from cloud_sync.training.twin import fine_tune_device_twin
    from model_export.errors import ExportError

    key = private_key(config)
    if key is None:
        print("twin-finetune: set [releases] private_key (the twin is signed with it)",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    try:
        tuned = fine_tune_device_twin(
            engine, args.device, config.training.reports_dir, key, args.version,
            epochs=args.epochs,
        )  # fmt: skip
    except ExportError as exc:
        print(f"twin-finetune: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.dispose()
    print(f"{args.device}\t{tuned.twin.manifest.model.version}\t{tuned.twin.path}\t"
          f"{tuned.series} series of {tuned.periods} periods")  # fmt: skip
    return EXIT_OK
