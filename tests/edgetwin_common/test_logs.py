"""Quiet by default: the runtime's per-load INFO line and per-request client lines are
shown at debug only; anything else native code prints stays visible."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from edgetwin_common import logs


def test_model_load_prints_nothing_on_stderr() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "model", "verify"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("OK ")
    assert result.stderr == ""


def test_native_info_lines_go_to_debug_and_others_stay(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("test.native")
    with caplog.at_level(logging.DEBUG, logger="test.native"), logs.native_stderr_to_log(logger):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"ERROR: something the user must see\n")
    assert "XNNPACK" in caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.DEBUG
    err = capfd.readouterr().err
    assert "ERROR: something the user must see" in err
    assert "XNNPACK" not in err


@pytest.mark.parametrize(("level", "httpx_level"), [("info", logging.WARNING), ("debug", 0)])
def test_http_client_lines_only_at_debug(level: str, httpx_level: int) -> None:
    root = logging.getLogger()
    before = root.handlers[:], root.level
    try:
        logs.configure(level, "text")
        assert logging.getLogger("httpx").level == httpx_level
    finally:
        root.handlers[:], _ = before
        root.setLevel(before[1])
        logging.getLogger("httpx").setLevel(logging.NOTSET)
