"""The TOML config: golden error cases, the example config, the generated reference."""

from __future__ import annotations

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
