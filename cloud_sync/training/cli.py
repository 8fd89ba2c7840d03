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
    for d in outcome.decisions:
        # Always five columns ("-" where a skipped device has no version or report).
        where = d.report_dir if d.report_dir is not None else "-"
        print(f"{d.device}\t{d.verdict.value}\t{d.version or '-'}\t{where}\t{d.reason}")
    counts = Counter(d.verdict for d in outcome.decisions)
    print(
        f"retrain: {len(outcome.decisions)} device(s) in {outcome.seconds:.0f} s: "
        + ", ".join(f"{n} {v.value}" for v, n in sorted(counts.items())),
        file=sys.stderr,
    )
    return EXIT_FAILED if counts[Verdict.FAILED] else EXIT_OK
