"""``GET /summaries``: a channel's per-interval summaries from the store, for charts
of hours to weeks (the status page's time range beyond the raw readings it can fetch).

With ``step`` the intervals are merged into aligned buckets of ``step`` seconds
(``start = floor(interval start / step) * step``): a month of 60 s summaries is 43,200
rows, which no chart needs; ``step = 3600`` makes it 720.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Annotated, Protocol, runtime_checkable

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel

from edge_agent.store.summary import Summary

MAX_ROWS = 100_000
"""Stored intervals read for one answer at most (70 days of 60 s intervals)."""


class SummaryPoint(BaseModel):
    """One interval (or bucket of intervals) of one channel. Times in UNIX seconds,
    values in the channel's units."""

    start: float
    end: float
    count: int
    """Samples summarised."""
    min: float
    max: float
    mean: float
    last: float
    """The last sample's value; ``last_ts`` its time."""
    last_ts: float
    score_max: float | None
    """Highest anomaly score; None when no sample carried one."""


class SummarySource(Protocol):
    def summaries(
        self, channel: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[Summary]: ...


@runtime_checkable
class HasStore(Protocol):
    """A view whose store answers summaries (the running agent; not the no-model one)."""

    store: SummarySource


def add_summary_routes(app: FastAPI, view: object) -> None:
    """Register ``GET /summaries`` on ``app``; it answers 503 when ``view`` has no store."""

    @app.get("/summaries", response_model=list[SummaryPoint], summary="Per-interval summaries")
    async def summaries(
        channel: Annotated[str, Query(min_length=1, max_length=64)],
        since: Annotated[
            float | None, Query(description="UNIX seconds", allow_inf_nan=False)
        ] = None,
        step: Annotated[
            float | None,
            Query(gt=0, le=30 * 86400, allow_inf_nan=False, description="bucket, seconds"),
        ] = None,
    ) -> list[SummaryPoint]:
        if since is not None and not math.isfinite(since):
            raise HTTPException(422, detail="since: must be a finite number of UNIX seconds")
        if not isinstance(view, HasStore):
            raise HTTPException(503, detail="no store open: the agent runs without a model")
        # Off the loop: a month of intervals is a read of some milliseconds on an SD card.
        rows = await asyncio.to_thread(view.store.summaries, channel, since, MAX_ROWS)
        return bucketed(rows, step)


def bucketed(rows: Sequence[Summary], step: float | None) -> list[SummaryPoint]:
    """``rows`` (oldest first) merged into buckets of ``step`` seconds; None: as stored."""
    points: list[SummaryPoint] = []
    for row in rows:
        start = row.start if step is None else math.floor(row.start / step) * step
        end = row.end if step is None else start + step
        last = points[-1] if points else None
        if last is None or last.start != start or step is None:
            points.append(
                SummaryPoint(
                    start=start,
                    end=end,
                    count=row.count,
                    min=row.min,
                    max=row.max,
                    mean=row.mean,
                    last=row.last,
                    last_ts=row.last_ts,
                    score_max=row.score_max,
                )
            )
            continue
        total = last.count + row.count
        last.mean = (last.mean * last.count + row.mean * row.count) / total if total else row.mean
        last.count = total
        last.min = min(last.min, row.min)
        last.max = max(last.max, row.max)
        if row.last_ts >= last.last_ts:
            last.last, last.last_ts = row.last, row.last_ts
        if row.score_max is not None:
            last.score_max = (
                row.score_max if last.score_max is None else max(last.score_max, row.score_max)
            )
    return points
