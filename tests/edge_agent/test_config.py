"""The TOML config: golden error cases, the example config, the generated reference."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import doc as configdoc
from edge_agent.config import load_config, parse_config
from edgetwin_common.errors import ConfigInvalid
from tests.conftest import REPO

CASES = sorted((Path(__file__).parent / "config_cases").iterdir())
EXAMPLE = REPO / "examples" / "agent.toml"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_config_error_cases(case: Path) -> None:
    """Each expected line must match the start of one reported problem, and no problem
    may go unexpected: one message per problem, each with its key path."""
    expected = (case / "expected_error.txt").read_text().strip().splitlines()
    with pytest.raises(ConfigInvalid) as info:
        parse_config((case / "config.toml").read_text(), str(case))
    got = [str(p) for p in info.value.problems]
    for line in expected:
        assert any(g.startswith(line) for g in got), f"{line!r} not in {got}"
    assert len(got) == len(expected), got


def test_example_config_is_valid() -> None:
    loaded = load_config(EXAMPLE)
    assert loaded.config.sources, "the example should show a source"
    assert {rule.type for rule in loaded.config.alarms} >= {
        "forecast_above",
        "score_above",
        "health",
    }


def test_configuration_reference_is_in_sync() -> None:
    doc = REPO / "docs" / "configuration.md"
    assert doc.read_text() == configdoc.render(), (
        "docs/configuration.md is stale: python -m edge_agent.config.doc > docs/configuration.md"
    )


def test_check_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('[agent]\nnmae = 1\n[store]\nmax_bytes = "x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "2 problem(s)" in done.stderr
    assert "agent.nmae" in done.stderr and "store.max_bytes" in done.stderr


def test_check_config_accepts_the_example() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert ": OK (" in done.stdout


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="<file>"):
        load_config(tmp_path / "absent.toml")


OLD_SPELLING = """
[[sources]]
type = "serial"
name = "mcu"
port = "/dev/ttyACM0"
format = "kv"
reconnect_min_s = 0.25
reconnect_max_s = 8
[sources.fields.t]
channel = "t"

[[sources]]
type = "modbus"
name = "rs485"
port = "/dev/ttyUSB0"
reconnect_max_s = 12
[[sources.registers]]
channel = "rh"
kind = "input"
address = 1

[[sources]]
type = "gpio"
name = "io"
reconnect_min_s = 2
[[sources.inputs]]
channel = "door"
pin = 17

[[actions]]
type = "webhook"
name = "ops"
url = "https://ops.example/hook"
backoff_initial_s = 0.1
backoff_max_s = 4

[sync]
backoff_min_s = 3
backoff_max_s = 90

[ota]
download_retry_s = 7
"""

NEW_SPELLING = """
[[sources]]
type = "serial"
name = "mcu"
port = "/dev/ttyACM0"
format = "kv"
backoff = { initial_s = 0.25, max_s = 8 }
[sources.fields.t]
channel = "t"

[[sources]]
type = "modbus"
name = "rs485"
port = "/dev/ttyUSB0"
backoff = { max_s = 12 }
[[sources.registers]]
channel = "rh"
kind = "input"
address = 1

[[sources]]
type = "gpio"
name = "io"
backoff = { initial_s = 2 }
[[sources.inputs]]
channel = "door"
pin = 17

[[actions]]
type = "webhook"
name = "ops"
url = "https://ops.example/hook"
backoff = { initial_s = 0.1, max_s = 4 }

[sync]
backoff = { initial_s = 3, max_s = 90 }

[ota]
backoff = { initial_s = 7, max_s = 7 }
"""

DEPRECATIONS = [
    'sources "mcu": reconnect_min_s is deprecated, use backoff.initial_s',
    'sources "mcu": reconnect_max_s is deprecated, use backoff.max_s',
    'sources "rs485": reconnect_max_s is deprecated, use backoff.max_s',
    'sources "io": reconnect_min_s is deprecated, use backoff.initial_s',
    'actions "ops": backoff_initial_s is deprecated, use backoff.initial_s',
    'actions "ops": backoff_max_s is deprecated, use backoff.max_s',
    "sync: backoff_min_s is deprecated, use backoff.initial_s",
    "sync: backoff_max_s is deprecated, use backoff.max_s",
    "ota: download_retry_s is deprecated, use backoff.initial_s and backoff.max_s",
]


def test_renamed_backoff_keys_still_load_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old.toml"
    old.write_text(OLD_SPELLING)
    with caplog.at_level(logging.WARNING):
        loaded = load_config(old)
    assert [r.getMessage() for r in caplog.records] == [f"{old}: {d}" for d in DEPRECATIONS]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert loaded.config == parse_config(NEW_SPELLING)
    assert caplog.records == []
    modbus, gpio = loaded.config.sources[1:]
    assert (modbus.backoff.initial_s, gpio.backoff.max_s) == (0.5, 60.0)  # their defaults


def test_check_config_says_which_keys_were_renamed(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text(OLD_SPELLING)
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", str(old)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"{old}: {d}" for d in DEPRECATIONS]
