"""Content-addressed bundle store: each verified bundle as one deterministic tar archive.

A bundle folder (model.tflite, manifest.json, manifest.sig) is verified against the
fleet's release public key, then packed into a tar whose bytes depend only on the three
files' contents (sorted members, mtime 0, uid/gid 0, mode 0644, USTAR), so the same
bundle always gives the same sha256. The archive lives at ``<root>/<sha[:2]>/<sha>.tar``,
written to a temporary file, fsynced and renamed into place: a reader never sees half
an archive, and storing the same bundle twice is a no-op.

With an engine ([releases] store = "database") the archive is also stored in the
database, and ``<root>`` is only this replica's cache of it: a replica that never saw
the bundle fetches it from the database on first use and checks its sha256.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine

from cloud_sync.releases.archives import load_archive, save_archive
from cloud_sync.releases.errors import BundleNotStored, BundleRefused, ReleasesNotConfigured
from edgetwin_contracts.bundle import read_verified
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    Manifest,
    parse_manifest,
)

ARCHIVE_MEMBERS = (MANIFEST_FILE, SIGNATURE_FILE, MODEL_FILE)
"""Sorted by name: the order inside every archive."""
_SHA_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class StoredBundle:
    sha256: str
    """Of the archive (what ModelRelease.sha256 carries)."""
    size_bytes: int
    """Of the archive."""
    path: Path
    manifest: Manifest


def archive_bytes(files: dict[str, bytes]) -> bytes:
    """A deterministic tar of ``files`` (name -> content), members sorted by name."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= _SHA_CHARS


class BundleStore:
    """Bundles under ``root``, verified against ``public_key`` on the way in (None: a
    store that only reads, e.g. for serving downloads). ``engine``: keep the archives in
    that database too, ``root`` then caches them."""

    def __init__(
        self, root: Path, public_key: Ed25519PublicKey | None, engine: Engine | None = None
    ) -> None:
        self.root = root
        self.public_key = public_key
        self.engine = engine

    def path_of(self, sha256: str) -> Path:
        """Where the archive with this sha256 lives (it may not exist). Raises
        BundleNotStored for anything that is not 64 lowercase hex digits."""
        if not is_sha256(sha256):
            raise BundleNotStored(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
        return self.root / sha256[:2] / f"{sha256}.tar"

    def put(self, bundle_dir: Path) -> StoredBundle:
        """Verify and store a bundle folder; idempotent. Raises BundleRefused naming the
        problem (bad signature, wrong key, tampered model, incomplete bundle, ...),
        ReleasesNotConfigured for a read-only store."""
        if self.public_key is None:
            raise ReleasesNotConfigured("no release public key: this store only reads")
        try:
            verified = read_verified(bundle_dir, self.public_key)
        except BundleRejected as exc:
            raise BundleRefused(f"bundle {bundle_dir} refused: {exc}") from None
        data = archive_bytes(
            {
                MANIFEST_FILE: verified.manifest_bytes,
                SIGNATURE_FILE: verified.signature,
                MODEL_FILE: verified.model_bytes,
            }
        )
        sha = hashlib.sha256(data).hexdigest()
        if self.engine is not None:
            save_archive(self.engine, sha, data)
        path = self.path_of(sha)
        if not (path.exists() and path.stat().st_size == len(data)):
            _write_atomically(path, data)
        return StoredBundle(sha, len(data), path, verified.manifest)

    def local_path(self, sha256: str) -> Path:
        """The archive's file on this replica, fetched from the database first when the
        store has one and this replica has no copy yet. Raises BundleNotStored."""
        path = self.path_of(sha256)
        if path.is_file():
            return path
        data = None if self.engine is None else load_archive(self.engine, sha256)
        if data is None:
            raise BundleNotStored(f"no stored bundle {sha256}")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BundleNotStored(f"the stored archive {sha256} does not match its sha256")
        _write_atomically(path, data)
        return path

    def copy_folder_to_database(self) -> tuple[list[str], list[str]]:
        """Store every archive of the folder in the database (switching to store =
        "database": releases published before then download from every replica).
        Returns (copied, refused) sha256s; an archive whose bytes do not match its name
        is refused. Raises ReleasesNotConfigured for a store without a database."""
        if self.engine is None:
            raise ReleasesNotConfigured('[releases] store is not "database"')
        copied, refused = [], []
        for path in sorted(self.root.glob("??/*.tar")):
            sha = path.stem
            if not is_sha256(sha) or path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                refused.append(sha)
                continue
            save_archive(self.engine, sha, data)
            copied.append(sha)
        return copied, refused

    def get(self, sha256: str) -> StoredBundle:
        """The stored bundle with this sha256 (its manifest re-read from the archive).
        Raises BundleNotStored."""
        path = self.local_path(sha256)
        with tarfile.open(path, mode="r:") as tar:
            member = tar.extractfile(MANIFEST_FILE)
            assert member is not None
            manifest = parse_manifest(member.read(), str(path))
        return StoredBundle(sha256, path.stat().st_size, path, manifest)

    def unpack(self, sha256: str, dest: Path) -> Path:
        """Write the stored bundle's three files into the existing folder ``dest`` (to
        load it as a device would: the caller verifies it again with its key). Only the
        bundle's own member names are read, never extracted by path. Raises
        BundleNotStored."""
        path = self.local_path(sha256)
        with tarfile.open(path, mode="r:") as tar:
            for name in ARCHIVE_MEMBERS:
                try:
                    member = tar.extractfile(name)
                except KeyError:
                    member = None
                if member is None:
                    raise BundleNotStored(f"the stored archive {sha256} lacks {name}")
                with member:
                    (dest / name).write_bytes(member.read())
        return dest

    def open(self, sha256: str) -> BinaryIO:
        """The archive, opened for reading. Raises BundleNotStored."""
        return self.local_path(sha256).open("rb")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
