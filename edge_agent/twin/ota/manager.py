"""The twin's OTA manager: takes desired.twin from the device shadow and drives it
through download → archive check → unpack → signature → fits this device →
anti-rollback → child self-test → install → load → swap into the TwinService → live
guard → keep or roll back (docs/ota.md, "The twin's releases").

The generic steps are the model OTA's (``fetch_release``, ``ModelsDir``, ``run_child``);
what differs is what a twin is checked against, how it is self-tested (roll-outs, not
forecasts), where it is swapped (``TwinService.swap``: what-if, the advisor and the
cross-channel residual read ``service.twin``) and the guard (period means, not samples).
Every refusal is reported, alarmed and remembered in bad_versions; the twin in service
keeps answering throughout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.errors import EdgeAgentError
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.fetch import fetch_release
from edge_agent.model.ota.layout import ModelsDir, dir_in, install_name, rename_into
from edge_agent.model.ota.updater import ReleaseUpdater, UpdateKind
from edge_agent.twin.errors import NotATwinBundle, TwinError
from edge_agent.twin.model import LoadedTwin, load_twin
from edge_agent.twin.ota.checks import check_twin_release
from edge_agent.twin.ota.guard import TwinGuard
from edge_agent.twin.ota.selftest import TWIN_CHILD_COMMAND, TwinProbe, run_twin_self_test
from edge_agent.twin.service import TwinService
from edgetwin_contracts.batch import ModelRelease, ModelReport, ModelUpdateState
from edgetwin_contracts.bundle import MAX_MODEL_BYTES, read_verified
from edgetwin_contracts.manifest import Manifest

log = logging.getLogger(__name__)

ALARM_CHANNEL = "twin"
REJECTED_ALARM = "twin-update-rejected"
ROLLBACK_ALARM = "twin-rollback"
TWIN_UPDATES = UpdateKind("twin", ALARM_CHANNEL, REJECTED_ALARM, ROLLBACK_ALARM, "twin-")
DISABLED_REFUSAL = "twin updates (OTA) are disabled on this device ([ota] enabled)"


class TwinOtaManager(ReleaseUpdater[tuple[ModelRelease, TwinGuard, str]]):
    """Installs the twin releases the device shadow asks for.

    ota: the [ota] section (download limits, backoff, self-test timeout; ``enabled``).
    twins: the twins folder (same layout as the models folder). service: the twin in
    service, swapped in place. key / key_file: the fleet's release key (the same as for
    model releases, ``release_key_path``). device_channels: the channels this device
    has (a twin for others is refused when none runs yet). limits: channel -> cleaning
    (min, max) for the self-test. on_step: called with each step's name ("twin-" +
    the model OTA's names); the power-cut tests kill the process there.
    """

    def __init__(
        self,
        ota: OtaConfig,
        twins: ModelsDir,
        service: TwinService,
        *,
        engine: AlarmEngine,
        key: Ed25519PublicKey,
        key_file: Path,
        downloader: Downloader | None,
        device_channels: Collection[str],
        limits: Mapping[str, tuple[float | None, float | None]] | None = None,
        backend: str = "auto",
        clock: Callable[[], float] = time.time,
        on_step: Callable[[str], None] | None = None,
        self_test_command: Sequence[str] = TWIN_CHILD_COMMAND,
    ) -> None:
        super().__init__(
            TWIN_UPDATES,
            ota,
            twins,
            engine=engine,
            downloader=downloader,
            clock=clock,
            on_step=on_step,
        )
        self.ota = ota
        self.twins = twins
        self.service = service
        self._key = key
        self._key_file = key_file
        self._channels = frozenset(device_channels)
        self._limits = dict(limits or {})
        self._backend = backend
        self._self_test_command = tuple(self_test_command)

    rejectable: ClassVar[tuple[type[BaseException], ...]] = (
        *ReleaseUpdater.rejectable,
        NotATwinBundle,
    )

    # -- what the device shadow sees -------------------------------------------------

    @property
    def running_version(self) -> str | None:
        twin = self.service.twin
        return twin.manifest.model.version if twin is not None else None

    def in_service(self) -> ModelReport | None:
        """Name, version and model sha256 of the twin in service (None: none loaded)."""
        twin = self.service.twin
        if twin is None:
            return None
        m = twin.manifest
        return ModelReport(name=m.model.name, version=m.model.version, sha256=m.file.sha256)

    def _refusal(self) -> str | None:
        return None if self.ota.enabled else DISABLED_REFUSAL

    async def _while_guarding(self) -> None:
        await self.check_guard()

    # -- the steps -----------------------------------------------------------------

    async def _install(self, release: ModelRelease) -> None:
        twins = self.twins
        await asyncio.to_thread(twins.ensure)
        name = install_name(release.version, release.sha256)
        final = twins.path(name)
        if not final.is_dir():
            self._set(ModelUpdateState.DOWNLOADING, release)
            progress = self._fetch_progress(release)
            tmp = await fetch_release(twins, release, self.ota, self._downloader, progress)
            await self._check(release, tmp)
            await asyncio.to_thread(rename_into, tmp, final)
            self._step("installed")
            twins.partial(release.sha256).unlink(missing_ok=True)
        else:
            # Installed before (a retry after a stop during the guard, a rollback to a
            # kept twin): verified and self-tested again, the card may have changed.
            await self._check(release, final)
        loaded = await asyncio.to_thread(load_twin, final, self._key, backend=self._backend)
        attempts = twins.attempts(release.version)
        await asyncio.to_thread(twins.set_trial, release.version, name, attempts)
        self._step("trial")
        await self._swap_in(release, loaded, name)
        self._step("swapped")

    async def _check(self, release: ModelRelease, folder: Path) -> None:
        self._set(ModelUpdateState.VERIFYING, release)
        verified = await asyncio.to_thread(
            read_verified, folder, self._key, min(MAX_MODEL_BYTES, self.ota.max_bundle_bytes)
        )
        manifest = verified.manifest
        check_twin_release(
            manifest, release, self.service.twin, self.service.config, self._channels
        )
        self._step("verified")
        self._set(ModelUpdateState.SELF_TESTING, release)
        probe = await asyncio.to_thread(self._probe, manifest)
        await asyncio.to_thread(
            run_twin_self_test,
            folder,
            self._key_file,
            self._backend,
            self.ota.self_test_timeout_s,
            probe,
            self._self_test_command,
        )
        self._step("self_tested")

    def _probe(self, manifest: Manifest) -> TwinProbe:
        """The current state (when there is one) in the new twin's window, the
        scenario bounds and the channels' cleaning limits."""
        assert manifest.twin is not None  # check_twin_release refused any other
        history = None
        try:
            rows, _ = self.service.state(
                self._clock(), flush=False, periods=manifest.twin.window_steps
            )
            history = rows.tolist()
        except TwinError as exc:
            log.info("twin self-test without the current state (%s)", exc)
        bounds = {k: (v[0], v[1]) for k, v in self.service.config.bounds.items()}
        return TwinProbe(history=history, bounds=bounds, limits=self._limits)

    # -- swap, guard, rollback -----------------------------------------------------

    async def _swap_in(self, release: ModelRelease, loaded: LoadedTwin, name: str) -> None:
        previous = self.service.swap(loaded)
        if previous is None:
            # Nothing to compare with (no twin was loaded): this one is better than none.
            await asyncio.to_thread(self._commit, release, name, None)
            self._finished = release
            self._set(ModelUpdateState.INSTALLED, release)
            log.info("twin %s installed (no twin was in service to guard against)", name)
            return
        guard = TwinGuard(
            loaded,
            previous,
            self.service.config.guard_periods,
            self.service.config.guard_steps,
            since=self._clock(),
        )
        self._trial = (release, guard, name)
        self._set(ModelUpdateState.GUARDING, release)
        log.info("twin %s swapped in, guarding for %d periods", release.version, guard.target)

    async def check_guard(self) -> None:
        """Feed the guard the periods completed since it last looked; decide when it
        has seen enough. Called every second by ``run`` (and by tests directly)."""
        if self._trial is None:
            return
        _release, guard, _name = self._trial
        now = self._clock()
        if now < guard.next_end:
            return  # no period can have completed since the last one counted
        try:
            # The store read off the loop; the twins' roll-outs on it (what-if and the
            # advisor use the same models from the loop).
            history, end = await asyncio.to_thread(
                self.service.state, now, False, guard.history_periods
            )
        except (TwinError, EdgeAgentError, OSError) as exc:
            log.debug("twin guard waits for complete periods: %s", exc)
            return
        try:
            guard.observe(history, end)
        except TwinError as exc:  # a state a twin refuses to start from: not its fault
            log.warning("twin guard skipped the period ending %.0f: %s", end, exc)
        except Exception as exc:  # the new twin failing must roll it back, not stop updates
            guard.failure = f"{type(exc).__name__}: {exc}"
        if guard.is_done:
            await self._decide(guard)

    async def _decide(self, guard: TwinGuard) -> None:
        if self._trial is None:
            return
        release, _guard, name = self._trial
        self._trial = None
        reason = guard.verdict(self.service.config.guard_margin)
        previous_version = guard.previous.manifest.model.version
        self._finished = release
        if reason is not None:
            reason += f" (previous twin {previous_version})"
            self.service.swap(guard.previous)
            await self._rolled_back(release, reason, guard.figures())
        else:
            prev_dir = dir_in(self.twins.root, guard.previous.path)
            await asyncio.to_thread(self._commit, release, name, prev_dir)
            self._set(ModelUpdateState.INSTALLED, release)
            self._report = self._report.model_copy(update=guard.figures())
            log.info(
                "twin %s installed (error %s vs %s over %d periods)",
                release.version,
                guard.mae_new,
                guard.mae_old,
                guard.periods,
            )
        self._wake_up()
