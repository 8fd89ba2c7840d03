"""`edge-agent simulate` arguments and command, through an argparse parser as the CLI
builds it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge_agent.simulator import parse_fault
from edge_agent.simulator.cli import add_simulate_arguments, run_simulate, settings_from_args
from edge_agent.sources.lineproto import LineFormat


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-agent simulate")
    add_simulate_arguments(parser)
    return parser.parse_args(argv)


def test_documented_command_line_parses(tmp_path: Path) -> None:
    args = parse(
        "--rate", "20", "--format", "kv", "--fault", "overheat@60s", "--fault", "vanish@30s:5s",
        "--link", str(tmp_path / "pump0"), "--seed", "7",
    )  # fmt: skip
    settings = settings_from_args(args)
    assert settings.rate_hz == 20.0
    assert settings.format is LineFormat.KEY_VALUE
    assert settings.faults == (parse_fault("overheat@60s"), parse_fault("vanish@30s:5s"))
    assert settings.link == tmp_path / "pump0"
    assert settings.seed == 7
    assert settings.duration_s is None


def test_a_bad_fault_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("--fault", "melt@1s")
    assert exc.value.code == 2
    assert "unknown fault 'melt'" in capsys.readouterr().err


def test_bad_rate_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulate(parse("--rate", "0")) == 2
    assert "rate must be" in capsys.readouterr().err


def test_runs_for_its_duration_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "pump0"
    code = run_simulate(
        parse("--rate", "100", "--duration", "0.2", "--link", str(link), "--fault", "spike@0.1s")
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "fault spike@0.1s:0s,channel=bearing_temp,size=15.0 from sample 10" in out
    assert "device at /dev/pts/" in out and f"(link {link})" in out
    assert "stopped after 20 samples" in out
    assert not link.exists()
