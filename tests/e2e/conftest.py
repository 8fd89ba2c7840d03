"""Fixtures of the end-to-end tests: a fresh cloud database per test (an SQLite file, or
a new PostgreSQL database on 127.0.0.1:5432, dropped afterwards; without a server the
PostgreSQL cases skip with the reason printed, and fail under CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud_sync.conftest import fresh_pg_database


@pytest.fixture
def pg_db_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test alone."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The cloud's database: an SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    url: str = request.getfixturevalue("pg_db_url")
    return url
