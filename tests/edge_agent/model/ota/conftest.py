"""Fixtures: the release server, the test release key as a PEM file, and a rig of a
real pipeline + alarm engine + OTA manager around the shipped model."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import AlarmEvent
from edge_agent.config import parse_config
from edge_agent.model.bundle import load_bundle
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.model.ota.manager import OtaManager
from edge_agent.model.ota.selftest import CHILD_COMMAND
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.reading import Reading
from edgetwin_contracts import signing

from .releases import TOKEN, ReleaseServer


@pytest.fixture
def server() -> Iterator[ReleaseServer]:
    srv = ReleaseServer()
    with srv.serve():
        yield srv


@pytest.fixture
def key_file(tmp_path: Path, release_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "release.pub"
    path.write_bytes(signing.public_key_pem(release_key.public_key()))
    return path


class Sink:
    def __init__(self) -> None:
        self.rows: list[tuple[float, str]] = []

    def add_sample(
        self, ts: float, channel: str, value: float, forecast: float | None, score: float | None
    ) -> None:
        self.rows.append((ts, channel))


def sine(i: int) -> float:
    return 50.0 + 5.0 * math.sin(2 * math.pi * i / 40.0)


@dataclass
class Rig:
    manager: OtaManager
    pipeline: Pipeline
    engine: AlarmEngine
    models: ModelsDir
    sink: Sink
    events: list[AlarmEvent] = field(default_factory=list)
    fed: int = 0

    def feed(
        self, n: int, value: Callable[[int], float] = sine, channels: Sequence[str] = ("a", "b")
    ) -> None:
        for _ in range(n):
            i = self.fed
            for ch in channels:
                self.pipeline.process(Reading(1_700_000_000.0 + i, ch, value(i)))
            self.fed += 1

    def alarms(self) -> list[str]:
        return [e.alarm.rule for e in self.events if e.kind.value == "raised"]


RigFactory = Callable[..., Rig]
REPO_ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def rig(tmp_path: Path, key_file: Path, server: ReleaseServer) -> RigFactory:
    def build(
        command: Sequence[str] = CHILD_COMMAND,
        on_step: Callable[[str], None] | None = None,
        **ota: Any,
    ) -> Rig:
        settings: dict[str, Any] = {
            "guard_samples": 60,
            "backoff": {"initial_s": 0.05, "max_s": 0.05},
            "download_attempts": 3,
            "self_test_timeout_s": 60,
        }
        settings.update(ota)
        config = OtaConfig(**settings)
        models = ModelsDir(tmp_path / "models")
        running = load_bundle(DEFAULT_BUNDLE, default_public_key())
        events: list[AlarmEvent] = []
        engine = AlarmEngine([], running.forecaster.horizons, sink=events.append, actions={})
        sink = Sink()
        pipeline = Pipeline(parse_config(""), running.forecaster, engine, sink)
        manager = OtaManager(
            config,
            models,
            running=running,
            pipeline=pipeline,
            engine=engine,
            key=signing.load_public_key(key_file),
            key_file=key_file,
            downloader=Downloader(server.url, TOKEN, 10.0),
            on_step=on_step,
            self_test_command=command,
        )
        manager.recover()
        return Rig(manager, pipeline, engine, models, sink, events)

    return build


def run(coro: Any) -> Any:
    return asyncio.run(coro)
