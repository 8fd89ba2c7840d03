"""Building the twin and its release path for the agent (one call each, so the agent's
module stays small): the twin to start with comes from the twins folder's pointer
first, then the configured or shipped twin (docs/ota.md, "The twin's releases")."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.config import LoadedConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.twin.ota.manager import TwinOtaManager
from edge_agent.twin.service import SummaryStore, TwinService
from edgetwin_contracts.signing import load_public_key


def installed_twins(twins: ModelsDir, release_key: Path) -> list[tuple[Path, Path]]:
    """The installed twins to try at start, in order (the pointer's, then the one it
    replaced), each with the release key it was verified with when installed."""
    pointer = twins.current()
    if pointer is None:
        return []
    return [(twins.path(name), release_key) for name in (pointer.dir, pointer.previous) if name]


def twins_dir(loaded: LoadedConfig) -> ModelsDir | None:
    twin = loaded.config.twin
    return ModelsDir(loaded.resolve(twin.twins_dir)) if twin is not None else None


def start_twin(
    loaded: LoadedConfig, store: SummaryStore, clock: Callable[[], float], release_key: Path
) -> TwinService | None:
    """The twin service of the config's [twin] section (None without one), starting
    with the twin installed over the air when it still verifies with ``release_key``."""
    c = loaded.config
    folder = twins_dir(loaded)
    if c.twin is None or folder is None:
        return None
    installed = installed_twins(folder, release_key)
    return TwinService(
        c.twin, loaded.resolve, c.alarms, store, clock, c.model.backend, installed=installed
    )


def twin_updates(
    loaded: LoadedConfig,
    service: TwinService | None,
    engine: AlarmEngine,
    device_channels: Collection[str],
    release_key: Path,
    clock: Callable[[], float] = time.time,
    on_step: Callable[[str], None] | None = None,
) -> TwinOtaManager | None:
    """The twin's OTA manager, recovered from an interrupted trial, when the config has
    [twin] and [sync] (None otherwise). With [ota] enabled = false it exists but refuses
    every release (reported), so the device still reports the twin in service."""
    c = loaded.config
    folder = twins_dir(loaded)
    if service is None or folder is None or not c.sync.enabled:
        return None
    token = c.sync.token.get_secret_value() if c.sync.token else ""
    limits = {
        name: (c.channel(name).cleaning.min, c.channel(name).cleaning.max)
        for name in device_channels
    }
    manager = TwinOtaManager(
        c.ota,
        folder,
        service,
        engine=engine,
        key=load_public_key(release_key),
        key_file=release_key,
        downloader=Downloader(c.sync.url, token, c.sync.timeout_s),
        device_channels=device_channels,
        limits=limits,
        backend=c.model.backend,
        clock=clock,
        on_step=on_step,
    )
    manager.recover()
    return manager
