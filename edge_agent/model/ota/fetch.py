"""Getting a release onto the card: download (resumed with HTTP Range), size and sha256
check, safe unpacking into a temp folder. Shared by the model's and the twin's OTA
managers (docs/ota.md); what is in the bundle is their business."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.model.ota.archive import check_archive, extract_bundle
from edge_agent.model.ota.config import OtaConfig
from edge_agent.model.ota.download import Downloader
from edge_agent.model.ota.errors import (
    ArchiveMismatch,
    DownloadFailed,
    DownloadInterrupted,
    DownloadTooLarge,
    UpdateRejected,
)
from edge_agent.model.ota.layout import ModelsDir
from edgetwin_common.retry import Backoff
from edgetwin_contracts.batch import ModelRelease

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchProgress:
    """Where a fetch reports: ``state(update_state_value, reason)`` for the update report
    (``"downloading"``, ``"verifying"``), ``step(name)`` after "downloaded", "extracted"
    (the power-cut tests kill the process there)."""

    state: Callable[[str, str | None], None]
    step: Callable[[str], None]


async def fetch_release(
    folder: ModelsDir,
    release: ModelRelease,
    config: OtaConfig,
    downloader: Downloader | None,
    progress: FetchProgress,
) -> Path:
    """Download ``release`` into ``folder``'s partial file, check its size and sha256,
    and unpack its three files into a fresh temp folder, which is returned (the caller
    verifies it and renames it into place).

    Raises DownloadTooLarge, DownloadFailed, ArchiveMismatch (the partial file is
    removed: never resume onto wrong bytes), NotAnArchive, ArchiveUnsafe, OSError.
    """
    if release.size_bytes > config.max_bundle_bytes:
        raise DownloadTooLarge(
            f"release is {release.size_bytes} bytes > max_bundle_bytes {config.max_bundle_bytes}"
        )
    partial = folder.partial(release.sha256)
    await download_release(downloader, release, partial, config, progress)
    progress.step("downloaded")
    progress.state("verifying", None)
    try:
        await asyncio.to_thread(check_archive, partial, release.size_bytes, release.sha256)
    except ArchiveMismatch:
        partial.unlink(missing_ok=True)
        raise
    tmp = folder.temp_dir(release.sha256)
    await asyncio.to_thread(extract_bundle, partial, tmp, config.max_bundle_bytes)
    progress.step("extracted")
    return tmp


async def download_release(
    downloader: Downloader | None,
    release: ModelRelease,
    partial: Path,
    config: OtaConfig,
    progress: FetchProgress,
) -> None:
    """Fetch into ``partial``, resuming after interruptions with [ota] backoff until
    ``download_attempts`` attempts in a row bring no new byte.

    Raises DownloadFailed (no connection, no progress), UpdateRejected from the
    downloader (too large, not an archive; the partial file is removed).
    """
    if downloader is None:
        raise DownloadFailed("no cloud connection configured ([sync])")
    fruitless = 0
    backoff = Backoff(config.backoff)
    while True:
        before = partial.stat().st_size if partial.exists() else 0
        try:
            await downloader.fetch(release.url, partial, release.size_bytes)
            return
        except DownloadInterrupted as exc:
            after = partial.stat().st_size if partial.exists() else 0
            fruitless = 0 if after > before else fruitless + 1
            if fruitless >= config.download_attempts:
                raise DownloadFailed(
                    f"{exc}; no progress in {fruitless} attempts "
                    f"({after} of {release.size_bytes} bytes)"
                ) from None
            progress.state("downloading", f"resuming: {exc}")
            log.warning("download of %s interrupted (%s); resuming", release.version, exc)
            await asyncio.sleep(backoff.delay(fruitless))
        except UpdateRejected:
            partial.unlink(missing_ok=True)
            raise
