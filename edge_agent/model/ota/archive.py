"""Checking a downloaded release archive and unpacking it safely.

Only the three bundle files are accepted, as regular files at the top level: no
links, no paths, no devices, no duplicates, each within a size cap; they are written
with fsync into a fresh folder (never extracted by ``tarfile`` itself, so no member
name can reach outside it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from edge_agent.model.ota.errors import ArchiveMismatch, ArchiveUnsafe, NotAnArchive
from edge_agent.model.ota.layout import fsync_dir
from edgetwin_contracts.manifest import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE

BUNDLE_FILES = frozenset({MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE})
_CHUNK = 64 * 1024


def is_tar_header(head: bytes) -> bool:
    """Whether ``head`` (the first 512 bytes or more) starts a ustar/gnu tar archive."""
    return len(head) >= 262 and head[257:262] == b"ustar"


def check_archive(path: Path, size_bytes: int, sha256: str) -> None:
    """Raise ArchiveMismatch unless the file has exactly this size and sha256."""
    size = path.stat().st_size
    if size != size_bytes:
        raise ArchiveMismatch(f"archive is {size} bytes, the release says {size_bytes}")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ArchiveMismatch(f"archive sha256 is {digest.hexdigest()}, the release says {sha256}")


def extract_bundle(archive: Path, dest: Path, max_file_bytes: int) -> None:
    """Unpack the bundle's three files from ``archive`` into a fresh ``dest`` (removed
    first if present), each fsynced, then the folder. Raises NotAnArchive, ArchiveUnsafe."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        tar = tarfile.open(archive, mode="r:")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise NotAnArchive(f"cannot read the archive as tar: {exc}") from None
    seen: set[str] = set()
    with tar:
        try:
            members = tar.getmembers()
        except tarfile.TarError as exc:
            raise NotAnArchive(f"corrupt tar archive: {exc}") from None
        for member in members:
            name = member.name
            if name not in BUNDLE_FILES:
                raise ArchiveUnsafe(f"unexpected member {name!r} (only {sorted(BUNDLE_FILES)})")
            if not member.isreg():
                raise ArchiveUnsafe(f"member {name!r} is not a regular file")
            if name in seen:
                raise ArchiveUnsafe(f"member {name!r} appears twice")
            if member.size > max_file_bytes:
                raise ArchiveUnsafe(f"member {name!r} is {member.size} bytes > {max_file_bytes}")
            seen.add(name)
            source = tar.extractfile(member)
            if source is None:  # pragma: no cover - isreg() members always have data
                raise ArchiveUnsafe(f"member {name!r} has no data")
            with source, (dest / name).open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
    missing = BUNDLE_FILES - seen
    if missing:
        raise ArchiveUnsafe(f"archive lacks {sorted(missing)}")
    fsync_dir(dest)
