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
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import Severity
from edge_agent.errors import BackendUnavailable, EdgeAgentError
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.errors import KnownBad, UpdateRejected
from edge_agent.model.ota.fetch import FetchProgress, fetch_release
from edge_agent.model.ota.layout import ModelsDir, Pointer, dir_in, install_name, rename_into
from edge_agent.twin.errors import NotATwinBundle, TwinError
from edge_agent.twin.model import LoadedTwin, load_twin
from edge_agent.twin.ota.checks import check_twin_release
from edge_agent.twin.ota.guard import TwinGuard
from edge_agent.twin.ota.selftest import TWIN_CHILD_COMMAND, TwinProbe, run_twin_self_test
from edge_agent.twin.service import TwinService
from edgetwin_contracts.batch import ModelRelease, ModelReport, ModelUpdateReport, ModelUpdateState
from edgetwin_contracts.bundle import MAX_MODEL_BYTES, read_verified
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.manifest import Manifest

log = logging.getLogger(__name__)

ALARM_CHANNEL = "twin"
REJECTED_ALARM = "twin-update-rejected"
ROLLBACK_ALARM = "twin-rollback"
MAX_TRIALS = 2
"""Starts that found a twin still under guard after which it is marked bad."""
DISABLED_REFUSAL = "twin updates (OTA) are disabled on this device ([ota] enabled)"


class TwinOtaManager:
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
        self.ota = ota
        self.twins = twins
        self.service = service
        self._engine = engine
        self._key = key
        self._key_file = key_file
        self._downloader = downloader
        self._channels = frozenset(device_channels)
        self._limits = dict(limits or {})
        self._backend = backend
        self._clock = clock
        self._on_step = on_step
        self._self_test_command = tuple(self_test_command)
        self._wanted: ModelRelease | None = None
        self._finished: ModelRelease | None = None
        self._wake: asyncio.Event | None = None
        self._trial: tuple[ModelRelease, TwinGuard, str] | None = None
        """(release, guard, install dir) while guarding."""
        self._report = ModelUpdateReport(bad_versions=twins.bad_versions())

    # -- what the device shadow sees -------------------------------------------------

    @property
    def running_version(self) -> str | None:
        twin = self.service.twin
        return twin.manifest.model.version if twin is not None else None

    @property
    def is_guarding(self) -> bool:
        return self._trial is not None

    def in_service(self) -> ModelReport | None:
        """Name, version and model sha256 of the twin in service (None: none loaded)."""
        twin = self.service.twin
        if twin is None:
            return None
        m = twin.manifest
        return ModelReport(name=m.model.name, version=m.model.version, sha256=m.file.sha256)

    def report(self) -> ModelUpdateReport:
        return self._report

    def request(self, release: ModelRelease) -> str | None:
        """The cloud wants twin ``release``. Returns why it is refused at once (updates
        disabled, known bad here), else None: it is installed in the background."""
        if not self.ota.enabled:
            return DISABLED_REFUSAL
        bad = self._report.bad_versions.get(release.version)
        if bad is not None and not release.is_rollback:
            return f"{KnownBad.reason}: {bad}"
        if self._wanted != release:
            self._wanted = release
            self._finished = None
        if self._wake is not None:
            self._wake.set()
        return None

    # -- start and the background loop ---------------------------------------------

    def recover(self) -> None:
        """At start: remove half-unpacked folders; a twin found under guard counts one
        attempt, and after MAX_TRIALS is marked bad."""
        self.twins.cleanup()
        marked = self.twins.recover_trial(self.running_version, MAX_TRIALS)
        if marked is not None:
            self._report = self._report.model_copy(
                update={"bad_versions": self.twins.bad_versions()}
            )
            log.error("twin release %s marked bad: %s", *marked)

    async def run(self, stop: asyncio.Event) -> None:
        """Install what ``request`` asked for and feed the guard, until ``stop``."""
        self._wake = asyncio.Event()
        self._wake.set()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()
                if self._trial is not None:
                    await self.check_guard()
                    continue
                release = self._wanted
                if (
                    release is None
                    or release == self._finished
                    or release.version == self.running_version
                ):
                    continue
                await self.update(release)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._downloader is not None:
            await self._downloader.aclose()

    async def update(self, release: ModelRelease) -> None:
        """One full attempt at ``release``; never raises for a bad release, a failing
        download or card: the outcome is in ``report()``."""
        try:
            await self._install(release)
        except (UpdateRejected, BundleRejected, NotATwinBundle) as exc:
            await self._reject(release, str(exc), mark_bad=True)
        except (OSError, BackendUnavailable) as exc:
            await self._reject(release, f"{type(exc).__name__}: {exc}", mark_bad=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: the twin in service must not suffer from it
            log.exception("twin update %s failed", release.version)
            await self._reject(release, f"internal error: {exc!r}", mark_bad=False)

    # -- the steps -----------------------------------------------------------------

    async def _install(self, release: ModelRelease) -> None:
        twins = self.twins
        await asyncio.to_thread(twins.ensure)
        name = install_name(release.version, release.sha256)
        final = twins.path(name)
        if not final.is_dir():
            self._set(ModelUpdateState.DOWNLOADING, release)
            progress = FetchProgress(
                lambda state, reason: self._set(ModelUpdateState(state), release, reason),
                self._step,
            )
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
            bad = await asyncio.to_thread(self._undo_trial, release.version, reason)
            self._alarm(ROLLBACK_ALARM, f"twin {release.version} rolled back: {reason}")
            self._report = ModelUpdateReport(
                state=ModelUpdateState.ROLLED_BACK,
                version=release.version,
                reason=reason,
                ts=self._clock(),
                bad_versions=bad,
                guard_samples=guard.periods,
                guard_mae_new=guard.mae_new,
                guard_mae_old=guard.mae_old,
            )
            log.error("twin %s rolled back: %s", release.version, reason)
        else:
            await asyncio.to_thread(self._commit, release, name, guard.previous)
            self._set(ModelUpdateState.INSTALLED, release)
            self._report = self._report.model_copy(
                update={
                    "guard_samples": guard.periods,
                    "guard_mae_new": guard.mae_new,
                    "guard_mae_old": guard.mae_old,
                }
            )
            log.info(
                "twin %s installed (error %s vs %s over %d periods)",
                release.version,
                guard.mae_new,
                guard.mae_old,
                guard.periods,
            )
        if self._wake is not None:
            self._wake.set()

    def _commit(self, release: ModelRelease, name: str, previous: LoadedTwin | None) -> None:
        prev_dir = dir_in(self.twins.root, previous.path) if previous is not None else None
        self.twins.set_current(Pointer(release.version, name, prev_dir))
        self._step("pointer")
        self.twins.clear_trial()
        self.twins.forget_bad(release.version)
        self.twins.prune({name} | ({prev_dir} if prev_dir else set()))
        self._report = self._report.model_copy(update={"bad_versions": self.twins.bad_versions()})

    def _undo_trial(self, version: str, reason: str) -> dict[str, str]:
        self.twins.clear_trial()
        return self.twins.mark_bad(version, reason)

    async def _reject(self, release: ModelRelease, reason: str, *, mark_bad: bool) -> None:
        self._finished = release
        bad = self._report.bad_versions
        tmp = self.twins.temp_dir(release.sha256)

        def clean() -> dict[str, str]:
            shutil.rmtree(tmp, ignore_errors=True)
            if mark_bad:
                self.twins.partial(release.sha256).unlink(missing_ok=True)
                return self.twins.mark_bad(release.version, reason)
            return bad

        try:
            bad = await asyncio.to_thread(clean)
        except OSError as exc:
            log.error("could not record the rejection of twin %s: %s", release.version, exc)
        self._alarm(REJECTED_ALARM, f"twin {release.version} rejected: {reason}")
        self._report = ModelUpdateReport(
            state=ModelUpdateState.REJECTED,
            version=release.version,
            reason=reason,
            ts=self._clock(),
            bad_versions=bad,
        )
        log.error("twin update %s rejected: %s", release.version, reason)

    # -- helpers -------------------------------------------------------------------

    def _alarm(self, name: str, message: str) -> None:
        self._engine.raise_internal(name, ALARM_CHANNEL, self._clock(), message, Severity.WARNING)

    def _set(
        self, state: ModelUpdateState, release: ModelRelease, reason: str | None = None
    ) -> None:
        self._report = ModelUpdateReport(
            state=state,
            version=release.version,
            reason=reason,
            ts=self._clock(),
            bad_versions=self._report.bad_versions,
        )

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(f"twin-{name}")
