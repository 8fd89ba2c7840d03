"""Building the bundle store and loading the release keys from [releases]."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from cloud_sync.config import CloudConfig
from cloud_sync.db.session import make_engine
from cloud_sync.releases.errors import ReleasesNotConfigured
from cloud_sync.releases.store import BundleStore
from edgetwin_contracts.signing import load_private_key, load_public_key


def read_only_store(config: CloudConfig, engine: Engine | None = None) -> BundleStore:
    """The store of ``config`` for reading (no key needed). ``engine``: the service's
    (store = "database"; without it one is made from [database] url)."""
    return BundleStore(
        config.releases.store_root(config.database.url), None, _archive_engine(config, engine)
    )


def make_store(config: CloudConfig, engine: Engine | None = None) -> BundleStore:
    """The store of ``config`` (``engine`` as for ``read_only_store``). Raises
    ReleasesNotConfigured without [releases] public_key, KeyInvalid for an unreadable
    key file."""
    section = config.releases
    if section.public_key is None:
        raise ReleasesNotConfigured(
            "[releases] public_key is not set: the fleet's release public key is needed "
            "to verify bundles"
        )
    return BundleStore(
        section.store_root(config.database.url),
        load_public_key(section.public_key),
        _archive_engine(config, engine),
    )


def _archive_engine(config: CloudConfig, engine: Engine | None) -> Engine | None:
    if config.releases.store != "database":
        return None
    return engine if engine is not None else make_engine(config.database.url)


def private_key(config: CloudConfig) -> Ed25519PrivateKey | None:
    """The release private key of [releases] private_key; None when not configured."""
    path = config.releases.private_key
    return None if path is None else load_private_key(path)
