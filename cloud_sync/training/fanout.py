"""Per-device fine-tunes as Dask tasks.

By default an in-process ``LocalCluster`` (``n_workers`` processes, one thread each:
nothing to set up); with ``[training] scheduler_address`` the tasks go to that existing
cluster, whose workers need edgetwin installed with the ``cloud`` extra. A task carries
its data and the fleet weights and returns a small result, so workers need neither the
database nor a shared disk.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from cloud_sync.training.task import FineTuneResult, FineTuneTask, fine_tune_device

T = TypeVar("T")
R = TypeVar("R")

WORKER_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
"""One compute thread per worker process: the workers are the parallelism."""


@contextmanager
def dask_client(scheduler_address: str | None, n_workers: int) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler_address``, else to a new LocalCluster of
    ``n_workers`` single-threaded processes (closed on exit)."""
    import distributed

    dist: Any = distributed  # untyped
    if scheduler_address is not None:
        client = dist.Client(scheduler_address)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = dist.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: never collide with another cluster
        silence_logs=logging.ERROR,
        env=WORKER_ENV,
    )
    try:
        with dist.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def run_tasks(
    client: Any, tasks: Sequence[FineTuneTask], *, progress: bool = True
) -> Iterator[tuple[FineTuneTask, FineTuneResult | BaseException]]:
    """Submit every device's fine-tune; yield (task, result or the exception it raised)
    as each finishes, with a progress bar over completed devices.

    A failing device does not stop the others: its exception is yielded, not raised.
    """
    yield from run_each(client, tasks, fine_tune_device, "fine-tune", progress=progress)


def run_each(
    client: Any,
    tasks: Sequence[T],
    fn: Callable[[T], R],
    label: str,
    *,
    progress: bool = True,
) -> Iterator[tuple[T, R | BaseException]]:
    """``fn(task)`` for every task on the cluster (each task has a ``device``); yield
    (task, result or the exception it raised) as each finishes. ``label`` names the
    tasks' keys and the progress bar ("fine-tune", "twin")."""
    import distributed

    as_completed: Any = distributed.as_completed

    if not tasks:
        return
    run = uuid.uuid4().hex[:8]
    futures = {
        client.submit(fn, task, key=f"{label}-{getattr(task, 'device', i)}-{run}"): task
        for i, task in enumerate(tasks)
    }
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), desc=label, unit="device", disable=None)
    try:
        for future in as_completed(futures):
            task = futures[future]
            if future.status == "error":
                outcome: R | BaseException = future.exception()
            else:
                outcome = future.result()
            if bar is not None:
                bar.update(1)
            yield task, outcome
    finally:
        if bar is not None:
            bar.close()
