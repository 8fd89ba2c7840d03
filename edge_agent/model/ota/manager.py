"""The OTA manager: takes the desired release from the twin and drives it through
download → archive check → unpack → signature → anti-rollback → child self-test →
install → load → swap → live guard → keep or roll back (docs/ota.md).

Every refusal is reported (``report()``: REJECTED or ROLLED_BACK with the reason),
raises an internal alarm and puts the release in bad_versions; the running model keeps
serving throughout. Blocking steps (hashing, unpacking, the child, loading) run in a
worker thread; the swap and the guard's decision run on the event loop, between two
samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import Severity
from edge_agent.errors import BackendUnavailable
from edge_agent.model.bundle import LoadedModel, load_bundle
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.errors import (
    ArchiveMismatch,
    KnownBad,
    UpdateRejected,
)
from edge_agent.model.ota.fetch import FetchProgress, fetch_release
from edge_agent.model.ota.layout import ModelsDir, Pointer, dir_in, install_name, rename_into
from edge_agent.model.ota.replacement import check_replacement
from edge_agent.model.ota.selftest import CHILD_COMMAND, Probe, run_self_test
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.pipeline.shadow import ShadowGuard, guard_verdict
from edgetwin_contracts.batch import ModelRelease, ModelUpdateReport, ModelUpdateState
from edgetwin_contracts.bundle import MAX_MODEL_BYTES, read_verified
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.manifest import Manifest

log = logging.getLogger(__name__)

ALARM_CHANNEL = "model"
REJECTED_ALARM = "model-update-rejected"
ROLLBACK_ALARM = "model-rollback"
MAX_TRIALS = 2
"""Starts that found a release still under guard (the agent stopped during it) after
which the release is marked bad rather than tried again."""


class OtaManager:
    """Installs the releases the twin asks for.

    running: the model serving now. pipeline / engine: where forecasters are swapped
    and alarms raised. key / key_file: the release public key (the file goes to the
    child). downloader: fetches archives (None: every release is refused).
    on_model: called on the event loop with the model serving after a swap or rollback.
    on_step: called with the name of each step as it completes (the power-cut tests kill
    the process there); self_test_command: the child to run (default: this package's
    ``selftest`` module under the running interpreter).
    """

    def __init__(
        self,
        config: OtaConfig,
        models: ModelsDir,
        *,
        running: LoadedModel,
        pipeline: Pipeline,
        engine: AlarmEngine,
        key: Ed25519PublicKey,
        key_file: Path,
        downloader: Downloader | None,
        backend: str = "auto",
        num_threads: int = 1,
        clock: Callable[[], float] = time.time,
        on_model: Callable[[LoadedModel], None] | None = None,
        on_step: Callable[[str], None] | None = None,
        self_test_command: Sequence[str] = CHILD_COMMAND,
    ) -> None:
        self.config = config
        self.models = models
        self.running = running
        self._pipeline = pipeline
        self._engine = engine
        self._key = key
        self._key_file = key_file
        self._downloader = downloader
        self._backend = backend
        self._num_threads = num_threads
        self._clock = clock
        self._on_model = on_model
        self._on_step = on_step
        self._self_test_command = tuple(self_test_command)
        self._wanted: ModelRelease | None = None
        self._finished: ModelRelease | None = None
        """The last release fully handled (installed, rejected, rolled back)."""
        self._wake: asyncio.Event | None = None
        self._trial: tuple[ModelRelease, LoadedModel, LoadedModel, str] | None = None
        """(release, new model, previous model, install dir) while guarding."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._report = ModelUpdateReport(bad_versions=models.bad_versions())

    # -- what the twin sees --------------------------------------------------------

    @property
    def is_guarding(self) -> bool:
        return self._trial is not None

    @property
    def running_version(self) -> str:
        return self.running.manifest.model.version

    def report(self) -> ModelUpdateReport:
        return self._report

    def request(self, release: ModelRelease) -> str | None:
        """The cloud wants ``release``. Returns why it is refused at once (known bad on
        this device), else None: it is installed in the background (see ``report``)."""
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
        """At start, before ``run``: remove half-unpacked folders and temp pointers; a
        release found still under guard (the agent stopped during its trial) counts one
        attempt, and after MAX_TRIALS is marked bad."""
        self.models.cleanup()
        marked = self.models.recover_trial(self.running_version, MAX_TRIALS)
        if marked is not None:
            self._report = self._report.model_copy(
                update={"bad_versions": self.models.bad_versions()}
            )
            log.error("release %s marked bad: %s", *marked)

    async def run(self, stop: asyncio.Event) -> None:
        """Install what ``request`` asked for, one release at a time, until ``stop``."""
        self._wake = asyncio.Event()
        self._wake.set()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()
                release = self._wanted
                if (
                    release is None
                    or self._trial is not None
                    or release == self._finished
                    or release.version == self.running_version
                ):
                    continue
                await self.update(release)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the download connections (they belong to the running event loop)."""
        if self._downloader is not None:
            await self._downloader.aclose()

    async def update(self, release: ModelRelease) -> None:
        """One full attempt at ``release``; never raises for a bad release, a failing
        download or card: the outcome is in ``report()``."""
        try:
            await self._install(release)
        except (UpdateRejected, BundleRejected) as exc:
            await self._reject(release, str(exc), mark_bad=True)
        except (OSError, BackendUnavailable) as exc:
            await self._reject(release, f"{type(exc).__name__}: {exc}", mark_bad=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: the model in service must not suffer from it
            log.exception("model update %s failed", release.version)
            await self._reject(release, f"internal error: {exc!r}", mark_bad=False)

    # -- the steps -----------------------------------------------------------------

    async def _install(self, release: ModelRelease) -> None:
        models = self.models
        await asyncio.to_thread(models.ensure)
        name = install_name(release.version, release.sha256)
        final = models.path(name)
        if not final.is_dir():
            self._set(ModelUpdateState.DOWNLOADING, release)
            tmp = await fetch_release(
                models, release, self.config, self._downloader, self._fetch_progress(release)
            )
            await self._check(release, tmp)
            await asyncio.to_thread(rename_into, tmp, final)
            self._step("installed")
            models.partial(release.sha256).unlink(missing_ok=True)
        else:
            # Installed before (a retry after a stop during the guard, or a rollback to a
            # kept bundle): verified and self-tested again, the card may have changed.
            await self._check(release, final)
        loaded = await asyncio.to_thread(
            load_bundle,
            final,
            self._key,
            backend=self._backend,
            num_threads=self._num_threads,
            max_model_bytes=min(MAX_MODEL_BYTES, self.config.max_bundle_bytes),
        )
        attempts = self.models.attempts(release.version)
        await asyncio.to_thread(models.set_trial, release.version, name, attempts)
        self._step("trial")
        self._swap_in(release, loaded, name)
        self._step("swapped")

    async def _check(self, release: ModelRelease, folder: Path) -> None:
        self._set(ModelUpdateState.VERIFYING, release)
        verified = await asyncio.to_thread(
            read_verified, folder, self._key, min(MAX_MODEL_BYTES, self.config.max_bundle_bytes)
        )
        self._check_release(release, verified.manifest)
        self._step("verified")
        self._set(ModelUpdateState.SELF_TESTING, release)
        await asyncio.to_thread(
            run_self_test,
            folder,
            self._key_file,
            self._backend,
            self.config.self_test_timeout_s,
            self._self_test_command,
            self._probes(),
        )
        self._step("self_tested")

    def _probes(self) -> dict[str, Probe]:
        """The channels' current windows and cleaning limits, for the self-test's
        plausibility check (read on the event loop, between two samples)."""
        return {
            name: Probe(ch.window.view().tolist(), ch.config.cleaning.min, ch.config.cleaning.max)
            for name, ch in self._pipeline.channels.items()
            if ch.window.is_full
        }

    def _check_release(self, release: ModelRelease, manifest: Manifest) -> None:
        version = manifest.model.version
        if version != release.version:
            raise ArchiveMismatch(
                f"the bundle's manifest says version {version}, the release {release.version}"
            )
        check_replacement(
            manifest,
            self.running,
            is_rollback=release.is_rollback,
            feeds=self._pipeline.feed_periods(),
        )

    def _fetch_progress(self, release: ModelRelease) -> FetchProgress:
        def state(name: str, reason: str | None) -> None:
            self._set(ModelUpdateState(name), release, reason)

        return FetchProgress(state, self._step)

    # -- swap, guard, rollback -----------------------------------------------------

    def _swap_in(self, release: ModelRelease, loaded: LoadedModel, name: str) -> None:
        previous = self.running
        period = loaded.manifest.input.sample_period_s
        guard = ShadowGuard(
            previous.forecaster,
            self.config.guard_samples,
            self._guard_done,
            horizons=loaded.forecaster.horizons,
            previous_period_s=previous.manifest.input.sample_period_s,
            period_s=period,
        )
        self._pipeline.swap(loaded.forecaster, guard, period)
        self.running = loaded
        self._trial = (release, loaded, previous, name)
        self._set(ModelUpdateState.GUARDING, release)
        log.info(
            "model %s swapped in, guarding for %d samples",
            release.version,
            self.config.guard_samples,
        )
        if self._on_model is not None:
            self._on_model(loaded)

    def _guard_done(self, guard: ShadowGuard) -> None:
        # Called from inside the pipeline (a sample being processed): decide in a task.
        task = asyncio.get_running_loop().create_task(self._decide(guard))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, guard: ShadowGuard) -> None:
        """Keep the new model or roll back, once the guard is done."""
        if self._trial is None:
            return
        release, _new, previous, name = self._trial
        mae_new, mae_old = guard.mae_new, guard.mae_old
        reason = guard_verdict(guard, self.config.guard_margin)
        if reason is not None and guard.failure is None:
            reason += f" (previous model {previous_version(previous)})"
        self._trial = None
        if reason is not None:
            self._pipeline.swap(previous.forecaster, None, previous.manifest.input.sample_period_s)
            self.running = previous
            if self._on_model is not None:
                self._on_model(previous)
            self._finished = release
            bad = await asyncio.to_thread(self._undo_trial, release.version, reason)
            self._alarm(ROLLBACK_ALARM, f"model {release.version} rolled back: {reason}")
            self._report = ModelUpdateReport(
                state=ModelUpdateState.ROLLED_BACK,
                version=release.version,
                reason=reason,
                ts=self._clock(),
                bad_versions=bad,
                **_guard_figures(guard),
            )
            log.error("model %s rolled back: %s", release.version, reason)
        else:
            self._pipeline.end_guard()
            await asyncio.to_thread(self._commit, release, name, previous)
            self._finished = release
            self._set(ModelUpdateState.INSTALLED, release)
            self._report = self._report.model_copy(update=_guard_figures(guard))
            log.info(
                "model %s installed (MAE %s vs %s over %d samples)",
                release.version,
                mae_new,
                mae_old,
                guard.samples,
            )
        if self._wake is not None:
            self._wake.set()

    def _commit(self, release: ModelRelease, name: str, previous: LoadedModel) -> None:
        prev_dir = dir_in(self.models.root, previous.path)
        self.models.set_current(Pointer(release.version, name, prev_dir))
        self._step("pointer")
        self.models.clear_trial()
        self.models.forget_bad(release.version)
        self.models.prune({name} | ({prev_dir} if prev_dir else set()))
        self._report = self._report.model_copy(update={"bad_versions": self.models.bad_versions()})

    def _undo_trial(self, version: str, reason: str) -> dict[str, str]:
        self.models.clear_trial()
        return self.models.mark_bad(version, reason)

    async def _reject(self, release: ModelRelease, reason: str, *, mark_bad: bool) -> None:
        self._finished = release
        bad = self._report.bad_versions
        tmp = self.models.temp_dir(release.sha256)

        def clean() -> dict[str, str]:
            shutil.rmtree(tmp, ignore_errors=True)
            if mark_bad:
                self.models.partial(release.sha256).unlink(missing_ok=True)
                return self.models.mark_bad(release.version, reason)
            return bad

        try:
            bad = await asyncio.to_thread(clean)
        except OSError as exc:
            log.error("could not record the rejection of %s: %s", release.version, exc)
        self._alarm(REJECTED_ALARM, f"model {release.version} rejected: {reason}")
        self._report = ModelUpdateReport(
            state=ModelUpdateState.REJECTED,
            version=release.version,
            reason=reason,
            ts=self._clock(),
            bad_versions=bad,
        )
        log.error("model update %s rejected: %s", release.version, reason)

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
            self._on_step(name)


def _guard_figures(guard: ShadowGuard) -> dict[str, Any]:
    return {
        "guard_samples": guard.samples,
        "guard_mae_new": guard.mae_new,
        "guard_mae_old": guard.mae_old,
    }


def previous_version(model: LoadedModel) -> str:
    return model.manifest.model.version
