"""Reading a bundle's files and checking everything that needs no interpreter.

``read_verified`` is the gate every consumer passes first: it checks the signature over
the manifest's exact bytes, then the manifest schema, then the model file's size and
sha256, and hands back the model as bytes already in memory, so what the interpreter
later opens is exactly what was verified (no re-read of the file after the check).

Every file is opened without following a symlink and without blocking (a FIFO answers
at once), checked to be a regular file on the open descriptor, and read up to its cap.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgetwin_contracts.errors import (
    BundleFileNotRegular,
    BundleIncomplete,
    BundleTooLarge,
    ModelHashMismatch,
    ModelSizeMismatch,
    SignatureInvalid,
    SignatureMissing,
)
from edgetwin_contracts.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    Manifest,
    parse_manifest,
)
from edgetwin_contracts.signing import SIGNATURE_BYTES, is_valid_signature, key_id

MAX_MANIFEST_BYTES = 1 << 20
MAX_MODEL_BYTES = 64 << 20
"""A forecaster for a Pi is tens of kB; 64 MiB is a guard against a runaway file."""


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle whose signature, schema, size and hash all hold. Not yet run."""

    path: Path
    manifest: Manifest
    manifest_bytes: bytes
    model_bytes: bytes
    signature: bytes


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def read_bundle_file(path: Path, cap: int, bundle: str) -> bytes:
    """The bytes of one bundle file, at most ``cap``.

    Raises BundleIncomplete (missing), BundleFileNotRegular (a symlink, FIFO, device or
    folder: refused without blocking), BundleTooLarge (above ``cap``).
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise BundleIncomplete(bundle, f"{path.name} is missing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleFileNotRegular(bundle, f"{path.name} is a symlink") from None
        raise BundleIncomplete(bundle, f"{path.name} cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BundleFileNotRegular(bundle, f"{path.name} is a {_file_kind(info.st_mode)}")
        if info.st_size > cap:
            raise BundleTooLarge(bundle, f"{path.name} is larger than {cap} bytes")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        raise BundleTooLarge(bundle, f"{path.name} is larger than {cap} bytes")
    return data


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def read_verified(
    path: Path, public_key: Ed25519PublicKey, max_model_bytes: int = MAX_MODEL_BYTES
) -> VerifiedBundle:
    """Read and verify a bundle folder against the trusted release public key.

    Raises a subclass of ``BundleRejected``: BundleIncomplete, BundleFileNotRegular,
    BundleTooLarge, SignatureMissing, SignatureInvalid, SchemaVersionUnsupported, ManifestInvalid,
    ModelSizeMismatch, ModelHashMismatch.
    """
    bundle = str(path)
    if not path.is_dir():
        raise BundleIncomplete(bundle, "not a directory")
    manifest_bytes = read_bundle_file(path / MANIFEST_FILE, MAX_MANIFEST_BYTES, bundle)
    try:
        signature = read_bundle_file(path / SIGNATURE_FILE, 4096, bundle)
    except BundleIncomplete:
        raise SignatureMissing(
            bundle, f"{SIGNATURE_FILE} is missing; unsigned bundles are refused"
        ) from None
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureInvalid(
            bundle, f"{SIGNATURE_FILE} holds {len(signature)} bytes, expected {SIGNATURE_BYTES}"
        )
    if not is_valid_signature(public_key, manifest_bytes, signature):
        raise SignatureInvalid(
            bundle,
            f"{SIGNATURE_FILE} does not verify {MANIFEST_FILE} with the trusted key "
            f"{key_id(public_key)} (tampered manifest, or signed by another key)",
        )
    manifest = parse_manifest(manifest_bytes, bundle)
    if manifest.file.size_bytes > max_model_bytes:
        raise BundleTooLarge(
            bundle, f"manifest declares {manifest.file.size_bytes} bytes > cap {max_model_bytes}"
        )
    model_bytes = read_bundle_file(path / MODEL_FILE, max_model_bytes, bundle)
    if len(model_bytes) != manifest.file.size_bytes:
        raise ModelSizeMismatch(
            bundle,
            f"{MODEL_FILE} is {len(model_bytes)} bytes, manifest says {manifest.file.size_bytes}",
        )
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest.file.sha256:
        raise ModelHashMismatch(
            bundle, f"{MODEL_FILE} sha256 is {digest}, manifest says {manifest.file.sha256}"
        )
    return VerifiedBundle(path, manifest, manifest_bytes, model_bytes, signature)
