"""The default twin shipped inside the package and its public key (docs/twin.md)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgetwin_contracts.signing import load_public_key

DEFAULT_TWIN_BUNDLE = Path(__file__).resolve().parent / "default"
DEFAULT_TWIN_PUBLIC_KEY = Path(__file__).resolve().parent / "default_twin_release.pub"


def default_twin_public_key() -> Ed25519PublicKey:
    """The key that signed the shipped default twin."""
    return load_public_key(DEFAULT_TWIN_PUBLIC_KEY)
