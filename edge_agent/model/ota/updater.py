"""What the model's and the twin's OTA managers share: the wanted release and the
background loop, the outcome of an attempt (report, alarm, bad versions), and the
commit and undo of a trial in the install folder.

A subclass says what is running (``running_version``), installs a release
(``_install``: fetch, check, self-test, load, swap) and, when its guard needs polling,
feeds it (``_while_guarding``). The reports are the contract's ``ModelUpdateReport``
for both kinds (``reported.model_update`` / ``reported.twin_update``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from edge_agent.alarms.engine import AlarmEngine
from edge_agent.alarms.model import Severity
from edge_agent.errors import BackendUnavailable
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.errors import KnownBad, UpdateRejected
from edge_agent.model.ota.fetch import FetchProgress
from edge_agent.model.ota.layout import ModelsDir, Pointer
from edgetwin_contracts.batch import ModelRelease, ModelUpdateReport, ModelUpdateState
from edgetwin_contracts.errors import BundleRejected

log = logging.getLogger(__name__)

MAX_TRIALS = 2
"""Starts that found a release still under guard (the agent stopped during it) after
which the release is marked bad rather than tried again."""

TrialT = TypeVar("TrialT")


@dataclass(frozen=True, slots=True)
class UpdateKind:
    """How one kind of release is named in messages, alarms and step names."""

    noun: str
    """"model" or "twin"."""
    alarm_channel: str
    rejected_alarm: str
    rollback_alarm: str
    step_prefix: str = ""
    """Prepended to each step's name for ``on_step`` (the power-cut tests kill there)."""


class ReleaseUpdater(ABC, Generic[TrialT]):
    """One release at a time, from ``request`` to installed, rejected or rolled back.

    folder: where releases are installed (pointer, trial, bad versions). downloader:
    fetches archives (None: every release is refused at the download).
    """

    rejectable: ClassVar[tuple[type[BaseException], ...]] = (UpdateRejected, BundleRejected)
    """Errors that refuse the release for good (marked bad on this device)."""

    def __init__(
        self,
        kind: UpdateKind,
        ota: OtaConfig,
        folder: ModelsDir,
        *,
        engine: AlarmEngine,
        downloader: Downloader | None,
        clock: Callable[[], float] = time.time,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.kind = kind
        self._ota = ota
        self._folder = folder
        self._engine = engine
        self._downloader = downloader
        self._clock = clock
        self._on_step = on_step
        self._wanted: ModelRelease | None = None
        self._finished: ModelRelease | None = None
        """The last release fully handled (installed, rejected, rolled back)."""
        self._wake: asyncio.Event | None = None
        self._trial: TrialT | None = None
        """What the guard needs while a swapped-in release is on trial."""
        self._report = ModelUpdateReport(bad_versions=folder.bad_versions())

    # -- what the device shadow sees -------------------------------------------------

    @property
    @abstractmethod
    def running_version(self) -> str | None: ...

    @property
    def is_guarding(self) -> bool:
        return self._trial is not None

    def report(self) -> ModelUpdateReport:
        return self._report

    def _refusal(self) -> str | None:
        """Why every release is refused at once (None: they are not)."""
        return None

    def request(self, release: ModelRelease) -> str | None:
        """The cloud wants ``release``. Returns why it is refused at once (known bad on
        this device), else None: it is installed in the background (see ``report``)."""
        refusal = self._refusal()
        if refusal is not None:
            return refusal
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
        self._folder.cleanup()
        marked = self._folder.recover_trial(self.running_version, MAX_TRIALS)
        if marked is not None:
            self._report = self._report.model_copy(
                update={"bad_versions": self._folder.bad_versions()}
            )
            log.error("%s release %s marked bad: %s", self.kind.noun, *marked)

    async def run(self, stop: asyncio.Event) -> None:
        """Install what ``request`` asked for, one release at a time, until ``stop``."""
        self._wake = asyncio.Event()
        self._wake.set()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()
                if self._trial is not None:
                    await self._while_guarding()
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

    async def _while_guarding(self) -> None:
        """Called about every second while a release is on trial (its guard may poll)."""

    async def aclose(self) -> None:
        """Close the download connections (they belong to the running event loop)."""
        if self._downloader is not None:
            await self._downloader.aclose()

    async def update(self, release: ModelRelease) -> None:
        """One full attempt at ``release``; never raises for a bad release, a failing
        download or card: the outcome is in ``report()``."""
        try:
            await self._install(release)
        except self.rejectable as exc:
            await self._reject(release, str(exc), mark_bad=True)
        except (OSError, BackendUnavailable) as exc:
            await self._reject(release, f"{type(exc).__name__}: {exc}", mark_bad=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: what is in service must not suffer from it
            log.exception("%s update %s failed", self.kind.noun, release.version)
            await self._reject(release, f"internal error: {exc!r}", mark_bad=False)

    @abstractmethod
    async def _install(self, release: ModelRelease) -> None:
        """Fetch, check, self-test, load and swap in ``release`` (raises to refuse)."""

    def _fetch_progress(self, release: ModelRelease) -> FetchProgress:
        def state(name: str, reason: str | None) -> None:
            self._set(ModelUpdateState(name), release, reason)

        return FetchProgress(state, self._step)

    # -- outcomes ------------------------------------------------------------------

    def _commit(self, release: ModelRelease, name: str, prev_dir: str | None) -> None:
        """Make ``name`` the current release (``prev_dir`` the one to fall back to)."""
        folder = self._folder
        folder.set_current(Pointer(release.version, name, prev_dir))
        self._step("pointer")
        folder.clear_trial()
        folder.forget_bad(release.version)
        folder.prune({name} | ({prev_dir} if prev_dir else set()))
        self._report = self._report.model_copy(update={"bad_versions": folder.bad_versions()})

    async def _rolled_back(
        self, release: ModelRelease, reason: str, figures: dict[str, Any]
    ) -> None:
        """Record a rollback (``figures``: the guard's, for the report)."""
        self._finished = release
        bad = await asyncio.to_thread(self._undo_trial, release.version, reason)
        noun = self.kind.noun
        self._alarm(self.kind.rollback_alarm, f"{noun} {release.version} rolled back: {reason}")
        self._report = ModelUpdateReport(
            state=ModelUpdateState.ROLLED_BACK,
            version=release.version,
            reason=reason,
            ts=self._clock(),
            bad_versions=bad,
            **figures,
        )
        log.error("%s %s rolled back: %s", noun, release.version, reason)

    def _undo_trial(self, version: str, reason: str) -> dict[str, str]:
        self._folder.clear_trial()
        return self._folder.mark_bad(version, reason)

    async def _reject(self, release: ModelRelease, reason: str, *, mark_bad: bool) -> None:
        self._finished = release
        bad = self._report.bad_versions
        folder = self._folder
        tmp = folder.temp_dir(release.sha256)

        def clean() -> dict[str, str]:
            shutil.rmtree(tmp, ignore_errors=True)
            if mark_bad:
                folder.partial(release.sha256).unlink(missing_ok=True)
                return folder.mark_bad(release.version, reason)
            return bad

        noun = self.kind.noun
        try:
            bad = await asyncio.to_thread(clean)
        except OSError as exc:
            log.error("could not record the rejection of %s %s: %s", noun, release.version, exc)
        self._alarm(self.kind.rejected_alarm, f"{noun} {release.version} rejected: {reason}")
        self._report = ModelUpdateReport(
            state=ModelUpdateState.REJECTED,
            version=release.version,
            reason=reason,
            ts=self._clock(),
            bad_versions=bad,
        )
        log.error("%s update %s rejected: %s", noun, release.version, reason)

    # -- helpers -------------------------------------------------------------------

    def _alarm(self, name: str, message: str) -> None:
        self._engine.raise_internal(
            name, self.kind.alarm_channel, self._clock(), message, Severity.WARNING
        )

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
            self._on_step(self.kind.step_prefix + name)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()
