"""The device side of the kill -9 test: runs the real sync worker on a store until its
outbox is drained, then exits 0. The parent SIGKILLs it at chosen moments.

    python tests/edge_agent/sync/sync_child.py DB URL MAX_BATCH_BYTES
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edgetwin_common.testing import FakeClock
from tests.edge_agent.sync.helpers import CLOCK_START, make_worker, open_store


async def main(db: Path, url: str, max_batch_bytes: int) -> int:
    store = open_store(db)
    clock = FakeClock(CLOCK_START)
    worker, _ = make_worker(
        store,
        url,
        clock,
        max_batch_bytes=max_batch_bytes,
        backoff={"initial_s": 0.01, "max_s": 0.1},
    )
    try:
        while True:
            delay = await worker.tick()
            clock.now += delay
            if not any(store.stats().outbox_rows.values()) and store.sync_inflight() is None:
                return 0
            await asyncio.sleep(min(delay, 0.05))
    finally:
        await worker.aclose()
        store.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))))
