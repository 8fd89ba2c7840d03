"""The console script: exit codes, messages on stderr, no tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.model.shipped import DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE

CASES = Path(__file__).parent / "cases"
SCRIPT = Path(sys.executable).with_name("model-export")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "model_export.cli"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("build", "convert", "inspect", "verify", "keygen", "default-model", "demo"):
        assert command in result.stdout


def test_verify_accepts_the_shipped_default_bundle() -> None:
    result = run("verify", DEFAULT_BUNDLE, "--public-key", DEFAULT_PUBLIC_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK ")


def test_verify_rejects_a_tampered_model(tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(DEFAULT_BUNDLE, tmp_path / "bundle"))
    blob = bytearray((bundle / MODEL_FILE).read_bytes())
    blob[100] ^= 0xFF
    (bundle / MODEL_FILE).write_bytes(bytes(blob))
    result = run("verify", bundle, "--public-key", DEFAULT_PUBLIC_KEY)
    assert result.returncode == 1
    assert "model hash mismatch" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_rejects_a_bundle_signed_by_another_key(tmp_path: Path) -> None:
    assert run("keygen", "--out-dir", tmp_path / "keys").returncode == 0
    result = run("verify", DEFAULT_BUNDLE, "--public-key", tmp_path / "keys" / "release.pub")
    assert result.returncode == 1
    assert "bad signature" in result.stderr


def test_verify_with_a_missing_key_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("verify", DEFAULT_BUNDLE, "--public-key", tmp_path / "none.pub")
    assert result.returncode == 2
    assert "public key file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_prints_manifest_and_tensors() -> None:
    result = run("inspect", DEFAULT_BUNDLE)
    assert result.returncode == 0, result.stderr
    assert "edgetwin-generic-forecaster" in result.stdout
    assert "on disk: matches the manifest" in result.stdout
    assert "input 0:" in result.stdout and "shape [1, 32] int8" in result.stdout
    assert "output 0:" in result.stdout and "shape [1, 5] int8" in result.stdout


def test_inspect_json_is_the_manifest() -> None:
    result = run("inspect", DEFAULT_BUNDLE, "--json")
    assert result.returncode == 0
    assert result.stdout.encode() == (DEFAULT_BUNDLE / MANIFEST_FILE).read_bytes()


def test_inspect_of_a_missing_bundle_exits_1(tmp_path: Path) -> None:
    result = run("inspect", tmp_path / "absent")
    assert result.returncode == 1
    assert "not a directory" in result.stderr


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    first = run("keygen", "--out-dir", tmp_path)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "release.key").read_bytes()
    assert (tmp_path / "release.key").stat().st_mode & 0o077 == 0
    second = run("keygen", "--out-dir", tmp_path)
    assert second.returncode == 2
    assert "refusing to overwrite" in second.stderr
    assert (tmp_path / "release.key").read_bytes() == key


def test_build_with_a_bad_dataset_names_the_cell(tmp_path: Path) -> None:
    data = CASES / "missing_value" / "input.csv"
    result = run("build", "--data", data, "--out", tmp_path / "m.keras")
    assert result.returncode == 2
    assert f"dataset {data}, line 4, column 'value': missing value" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.parametrize("args", [["build"], ["verify", "x"], ["nonsense"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).returncode == 2
