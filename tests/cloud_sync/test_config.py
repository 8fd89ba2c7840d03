"""cloud.toml: the example loads, URLs are normalized, overrides apply in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_sync.config import DEFAULT_DATABASE_URL, load_config, parse_config
from cloud_sync.registry import token_sha256
from edgetwin_common.errors import ConfigInvalid

EXAMPLE = Path(__file__).resolve().parents[2] / "cloud_sync" / "examples" / "cloud.toml"


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.server.port == 8300
    assert config.database.url == DEFAULT_DATABASE_URL
    assert config.auth.admin_sha256() is not None


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUD_SYNC_DATABASE_URL", raising=False)
    config = load_config(None)
    assert config.database.url == DEFAULT_DATABASE_URL
    assert config.auth.admin_sha256() is None


def test_database_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text("[database]\nurl = 'sqlite:///from-file.db'\n")
    monkeypatch.delenv("CLOUD_SYNC_DATABASE_URL", raising=False)
    assert load_config(path).database.url == "sqlite:///from-file.db"
    monkeypatch.setenv("CLOUD_SYNC_DATABASE_URL", "postgres://u:p%40ss@db/fleet")
    assert load_config(path).database.url == "postgresql+psycopg://u:p%40ss@db/fleet"
    assert load_config(path, "sqlite:///flag.db").database.url == "sqlite:///flag.db"
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path, "oracle://x")
    assert caught.value.problems[0].path == "database.url"


def test_admin_token_or_its_hash() -> None:
    token = "t" * 20
    by_token = parse_config(f"[auth]\nadmin_token = '{token}'\n")
    by_hash = parse_config(f"[auth]\nadmin_token_sha256 = '{token_sha256(token).upper()}'\n")
    assert by_token.auth.admin_sha256() == by_hash.auth.admin_sha256() == token_sha256(token)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        parse_config("[server]\nport = 70000\nhost = 1\n[ingest]\nmax_future_skew_s = 0\n")
    paths = sorted(p.path for p in caught.value.problems)
    assert paths == ["ingest.max_future_skew_s", "server.host", "server.port"]
