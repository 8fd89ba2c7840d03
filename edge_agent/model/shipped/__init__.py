"""Models shipped inside the package: the generic default forecaster and its public key."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgetwin_contracts.signing import load_public_key

DEFAULT_BUNDLE = Path(__file__).resolve().parent / "default"
DEFAULT_PUBLIC_KEY = Path(__file__).resolve().parent / "default_release.pub"


def default_public_key() -> Ed25519PublicKey:
    """The key that signed the shipped default bundle (see docs/default-model.md)."""
    return load_public_key(DEFAULT_PUBLIC_KEY)
