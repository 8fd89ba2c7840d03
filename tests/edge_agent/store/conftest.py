"""Fixtures for the store tests: real SQLite files under tmp_path and a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.store import Store, StoreConfig
from edgetwin_common.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


StoreFactory = Callable[..., Store]


@pytest.fixture
def make_store(tmp_path: Path, clock: FakeClock) -> Iterator[StoreFactory]:
    """Open a Store on tmp_path/<name>.db with StoreConfig(**overrides); closed at teardown."""
    opened: list[Store] = []

    def build(name: str = "store", **overrides: Any) -> Store:
        store = Store(tmp_path / "data" / f"{name}.db", StoreConfig(**overrides), clock)
        opened.append(store)
        return store

    yield build
    for store in opened:
        store.close()
