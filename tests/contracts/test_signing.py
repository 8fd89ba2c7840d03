"""Release keys: storage, loading and signature checks."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetwin_contracts import signing
from edgetwin_contracts.errors import KeyInvalid


def test_keypair_round_trip_and_private_key_mode(tmp_path: Path) -> None:
    key = signing.generate_private_key()
    private_path = signing.save_keypair(key, tmp_path)
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    loaded = signing.load_private_key(private_path)
    public = signing.load_public_key(tmp_path / "release.pub")
    signature = signing.sign(loaded, b"manifest")
    assert signing.is_valid_signature(public, b"manifest", signature)
    assert signing.key_id(public) == signing.key_id(key.public_key())


def test_refuses_to_overwrite_a_release_key(tmp_path: Path) -> None:
    signing.save_keypair(signing.generate_private_key(), tmp_path)
    before = (tmp_path / "release.key").read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        signing.save_keypair(signing.generate_private_key(), tmp_path)
    assert (tmp_path / "release.key").read_bytes() == before


def test_signature_checks() -> None:
    key = signing.generate_private_key()
    public = key.public_key()
    good = signing.sign(key, b"abc")
    assert not signing.is_valid_signature(public, b"abd", good)
    assert not signing.is_valid_signature(public, b"abc", good[:-1])
    assert not signing.is_valid_signature(signing.generate_private_key().public_key(), b"abc", good)


def test_missing_and_wrong_key_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(KeyInvalid, match=r"nope\.pub: public key file not found"):
        signing.load_public_key(tmp_path / "nope.pub")
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    with pytest.raises(KeyInvalid, match=r"junk\.pub: not a PEM public key"):
        signing.load_public_key(junk)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pub = tmp_path / "ec.pub"
    ec_pub.write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyInvalid, match="expected an Ed25519 public key"):
        signing.load_public_key(ec_pub)
    ec_priv = tmp_path / "ec.key"
    ec_priv.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyInvalid, match="expected an Ed25519 private key"):
        signing.load_private_key(ec_priv)
