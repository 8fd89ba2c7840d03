"""The agent's wiring of the twin's releases: it starts with the installed twin (the
pointer, verified with the fleet's release key), hands desired.twin to the twin's OTA
manager through the device shadow, and reports the twin in service and the update."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.daemon.agent import Agent
from edge_agent.model.ota.layout import ModelsDir, Pointer
from edge_agent.reading import Reading
from edgetwin_contracts.batch import DesiredState, ModelUpdateState
from tests.edge_agent.agent_harness import config_for

from ...model.ota.releases import TOKEN, ReleaseServer
from .conftest import TwinPublisher


def agent_for(
    tmp_path: Path, key_file: Path, url: str, clock: Callable[[], float] = time.time
) -> Agent:
    body = f"""
[sync]
enabled = true
url = "{url}"
token = "{TOKEN}"

[ota]
release_public_key = "{key_file}"

[twin]
"""
    return Agent(config_for(tmp_path, body), sources=[], clock=clock)


def test_the_agent_updates_its_twin_through_the_shadow_and_starts_with_it(
    tmp_path: Path,
    key_file: Path,
    server: ReleaseServer,
    publish_twin: TwinPublisher,
) -> None:
    agent = agent_for(tmp_path, key_file, server.url)
    assert agent.whatif is not None and agent.twin is not None and agent.twin_ota is not None
    assert agent.whatif.twin is not None
    assert agent.twin.reported().twin is not None
    assert agent.twin.reported().twin.version == "1.0.0"  # type: ignore[union-attr]
    release = publish_twin("1.1.0")
    agent.twin.apply(DesiredState(version=1, twin_version="1.1.0", twin=release))

    async def scenario() -> None:
        assert agent.twin_ota is not None
        # The shadow asked the manager; run the attempt it would start in the background.
        await agent.twin_ota.update(release)
        await agent.twin_ota.aclose()

    asyncio.run(scenario())
    # No stored periods yet: the guard waits; the new twin already answers.
    reported = agent.twin.reported()
    assert reported.twin_update is not None
    assert reported.twin_update.state is ModelUpdateState.GUARDING, reported.twin_update
    assert reported.twin is not None and reported.twin.version == "1.1.0"
    assert reported.applied == ["twin_version"]
    agent.store.close()

    # A twin the guard kept (its pointer written) is the one the next start takes.
    twins = ModelsDir(tmp_path / "twins")
    installed = next(p.name for p in twins.root.iterdir() if p.name.startswith("1.1.0-"))
    twins.set_current(Pointer("1.1.0", installed, None))
    again = agent_for(tmp_path, key_file, server.url)
    assert again.whatif is not None and again.whatif.twin is not None
    assert again.whatif.twin.manifest.model.version == "1.1.0"
    assert again.whatif.twin.path == twins.root / installed
    # The trial left behind is the running twin's own: cleared, nothing marked bad.
    assert again.twin_ota is not None and again.twin_ota.report().bad_versions == {}
    assert not (twins.root / "trial.json").exists()
    again.store.close()


def test_the_twin_updates_run_on_the_readings_time(
    tmp_path: Path, key_file: Path, server: ReleaseServer, publish_twin: TwinPublisher
) -> None:
    """The guard counts twin periods that end after the swap, read from the store in the
    readings' time: on a fast-forwarded (or skewed) source, the wall clock would hold
    it back a wall minute per period (found by tests/e2e/test_twin_release.py). The
    manager's clock is the agent's device time, as channel health's is."""
    wall = float(int(time.time()))  # frozen; readings a day ahead of the real one are refused
    agent = agent_for(tmp_path, key_file, server.url, clock=lambda: wall)
    assert agent.twin_ota is not None and agent.twin is not None
    device_now = wall + 5 * 3600.0  # the source's own time, 5 h ahead of ours
    agent.pipeline.process(Reading(device_now, "load", 0.5))
    release = publish_twin("1.1.0")
    agent.twin.apply(DesiredState(version=1, twin_version="1.1.0", twin=release))

    async def scenario() -> None:
        assert agent.twin_ota is not None
        await agent.twin_ota.update(release)
        await agent.twin_ota.aclose()

    asyncio.run(scenario())
    update = agent.twin.reported().twin_update
    assert update is not None and update.state is ModelUpdateState.GUARDING, update
    assert update.ts == device_now  # swapped at the readings' time: the guard's start
    agent.store.close()
