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
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.model.bundle import LoadedModel, load_bundle
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.errors import (
    ArchiveMismatch,
)
from edge_agent.model.ota.fetch import fetch_release
from edge_agent.model.ota.layout import ModelsDir, dir_in, install_name, rename_into
from edge_agent.model.ota.replacement import check_replacement
from edge_agent.model.ota.selftest import CHILD_COMMAND, Probe, run_self_test
from edge_agent.model.ota.updater import ReleaseUpdater, UpdateKind
from edge_agent.pipeline.pipeline import Pipeline
from edge_agent.pipeline.shadow import ShadowGuard, guard_verdict
from edgetwin_contracts.batch import ModelRelease, ModelUpdateState
from edgetwin_contracts.bundle import MAX_MODEL_BYTES, read_verified
from edgetwin_contracts.manifest import Manifest

log = logging.getLogger(__name__)

ALARM_CHANNEL = "model"
REJECTED_ALARM = "model-update-rejected"
ROLLBACK_ALARM = "model-rollback"
MODEL_UPDATES = UpdateKind("model", ALARM_CHANNEL, REJECTED_ALARM, ROLLBACK_ALARM)


class OtaManager(ReleaseUpdater[tuple[ModelRelease, LoadedModel, LoadedModel, str]]):
    """Installs the model releases the device shadow asks for.

    running: the model serving now. pipeline / engine: where forecasters are swapped
    and alarms raised. key / key_file: the release public key (the file goes to the
    child). downloader: fetches archives (None: every release is refused).
    on_model: called on the event loop with the model serving after a swap or rollback.
    on_step: called with the name of each step as it completes (the power-cut tests kill
    the process there); self_test_command: the child to run (default: this package's
    ``selftest`` module under the running interpreter).
    The trial: (release, new model, previous model, install dir) while guarding.
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
        super().__init__(
            MODEL_UPDATES,
            config,
            models,
            engine=engine,
            downloader=downloader,
            clock=clock,
            on_step=on_step,
        )
        self.config = config
        self.models = models
        self.running = running
        self._pipeline = pipeline
        self._key = key
        self._key_file = key_file
        self._backend = backend
        self._num_threads = num_threads
        self._on_model = on_model
        self._self_test_command = tuple(self_test_command)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running_version(self) -> str:
        return self.running.manifest.model.version

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
            await self._rolled_back(release, reason, _guard_figures(guard))
        else:
            self._pipeline.end_guard()
            prev_dir = dir_in(self.models.root, previous.path)
            await asyncio.to_thread(self._commit, release, name, prev_dir)
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
        self._wake_up()


def _guard_figures(guard: ShadowGuard) -> dict[str, Any]:
    return {
        "guard_samples": guard.samples,
        "guard_mae_new": guard.mae_new,
        "guard_mae_old": guard.mae_old,
    }


def previous_version(model: LoadedModel) -> str:
    return model.manifest.model.version
