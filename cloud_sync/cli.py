"""`cloud-sync` command line (the ingest service and fleet jobs are added here)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cloud_sync import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cloud-sync",
        description="edgetwin cloud side. Model bundles are built and signed with "
        "`model-export`; the ingest service and twins are not part of this release yet.",
    )
    parser.add_argument("--version", action="version", version=f"cloud-sync {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
