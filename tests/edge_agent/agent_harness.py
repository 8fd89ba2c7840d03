"""Runs a real Agent (real uvicorn on 127.0.0.1, real SQLite) in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.config import LoadedConfig, parse_config
from edge_agent.daemon.agent import Agent


def config_for(tmp_path: Path, body: str) -> LoadedConfig:
    text = f'[agent]\nname = "test-agent"\ndata_dir = "{tmp_path}"\nlog_format = "text"\n' + body
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return LoadedConfig(path, parse_config(text, str(path)))


def replay_temp_toml(csv: Path, speed: float = 0) -> str:
    """Config lines: ``csv`` (a ``timestamp,temp`` CSV) replayed at ``speed`` (0: as fast
    as it goes) and the critical ``temp-high`` rule (set 80, clear 75)."""
    return f"""
[[sources]]
type = "replay"
name = "history"
path = "{csv}"
speed = {speed:g}

[channels.temp]
unit = "°C"

[[alarms]]
name = "temp-high"
channel = "temp"
type = "value_above"
set = 80
clear = 75
severity = "critical"
"""


@contextmanager
def running_agent(loaded: LoadedConfig) -> Iterator[Agent]:
    """Start the agent; yield it once its HTTP server answers; stop and join on exit."""
    agent = Agent(loaded)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(agent.run(stop, on_ready=lambda _agent: ready.set()))
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="agent", daemon=True)
    thread.start()
    assert ready.wait(30), "agent did not start"
    if failure:
        raise failure[0]
    try:
        yield agent
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "agent did not stop"
        if failure:
            raise failure[0]
