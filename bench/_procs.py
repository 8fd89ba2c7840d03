"""Process plumbing shared by the bench scripts that run the real agent and simulator
(bench/soak.py, bench/faults.py): child processes stopped on the way out, readiness."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def cli(package: str, *args: str) -> list[str]:
    """``python -m package args``: this checkout's code, not an installed console script."""
    return [sys.executable, "-m", package, *args]


@contextmanager
def child(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with its output in ``log``; terminated (then killed) on the way out."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def answers(port: int, path: str = "/ready") -> bool:
    """Whether the agent (or cloud) on ``port`` answers ``path`` with 200."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
