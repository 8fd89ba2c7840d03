"""A fake cloud served by real uvicorn on 127.0.0.1, and a store under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.store import Store
from edgetwin_common.testing import FakeClock

from .fakecloud import FakeCloud
from .helpers import CLOCK_START, TOKEN, open_store


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud(token=TOKEN)
    with fake.serve():
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "data" / "agent.db")
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(CLOCK_START)
