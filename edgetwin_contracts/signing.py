"""Ed25519 release keys: generate, store, load, sign, verify.

Keys are stored as PEM (PKCS#8 for the private key, SubjectPublicKeyInfo for the
public key). The private key never leaves the cloud / workstation side; devices hold
only the public key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgetwin_contracts.errors import KeyInvalid

SIGNATURE_BYTES = 64


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def save_keypair(private_key: Ed25519PrivateKey, directory: Path, stem: str = "release") -> Path:
    """Write ``<stem>.key`` (mode 0600) and ``<stem>.pub`` into directory.

    Refuses to overwrite an existing private key (a lost release key strands a fleet).
    Returns the private key path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{stem}.key"
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists; refusing to overwrite a release key")
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    (directory / f"{stem}.pub").write_bytes(public_key_pem(private_key.public_key()))
    return private_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Raises KeyInvalid naming the file when it is missing or not an Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyInvalid(f"{path}: private key file not found") from None
    except (ValueError, TypeError) as exc:
        raise KeyInvalid(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyInvalid(f"{path}: is a {type(key).__name__}, expected an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Raises KeyInvalid naming the file when it is missing or not an Ed25519 public key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyInvalid(f"{path}: public key file not found") from None
    return public_key_from_pem(data, str(path))


def public_key_from_pem(data: bytes, source: str = "<memory>") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyInvalid(f"{source}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyInvalid(f"{source}: is a {type(key).__name__}, expected an Ed25519 public key")
    return key


def sign(private_key: Ed25519PrivateKey, message: bytes) -> bytes:
    return private_key.sign(message)


def is_valid_signature(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
