"""Signing bundles with the fleet's release key, on the cloud side.

The private key lives only here ([releases] private_key, PEM, mode 0600); devices hold
only the public key. A bundle built by training (signed with a throwaway key, or not at
all) is re-signed before it is stored: ``signing.key_id`` in the manifest is set to the
release key's id and the canonical manifest bytes are signed.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.releases.errors import BundleRefused
from edgetwin_contracts import signing
from edgetwin_contracts.bundle import MAX_MANIFEST_BYTES, read_bundle_file
from edgetwin_contracts.errors import BundleRejected
from edgetwin_contracts.manifest import MANIFEST_FILE, SIGNATURE_FILE, Signing, parse_manifest


def sign_bundle(
    bundle_dir: Path, private_key: Ed25519PrivateKey, *, version: str | None = None
) -> None:
    """Re-sign the bundle folder in place: rewrite manifest.json (canonical bytes) with
    this key's id, and ``model.version`` set to ``version`` when given, and write
    manifest.sig. The model file is not touched (its hash stays in the manifest).
    Raises BundleRefused for a missing or invalid manifest."""
    path = bundle_dir / MANIFEST_FILE
    try:
        manifest = parse_manifest(
            read_bundle_file(path, MAX_MANIFEST_BYTES, str(bundle_dir)), str(bundle_dir)
        )
    except BundleRejected as exc:
        raise BundleRefused(f"bundle {bundle_dir} refused: {exc}") from None
    key_id = signing.key_id(private_key.public_key())
    update: dict[str, object] = {"signing": Signing(key_id=key_id)}
    if version is not None:
        update["model"] = manifest.model.model_copy(update={"version": version})
    manifest = manifest.model_validate(manifest.model_copy(update=update).model_dump())
    data = manifest.to_json_bytes()
    _replace(path, data)
    _replace(bundle_dir / SIGNATURE_FILE, signing.sign(private_key, data))


def keygen(directory: Path, stem: str = "release") -> Path:
    """Write ``<stem>.key`` (0600) and ``<stem>.pub``; refuses to overwrite a key.
    Returns the private key path."""
    return signing.save_keypair(signing.generate_private_key(), directory, stem)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
