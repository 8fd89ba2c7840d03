"""Which model bundle and key the config asks for, and loading it."""

from __future__ import annotations

from pathlib import Path

from edge_agent.bundle.loader import LoadedModel, load_bundle
from edge_agent.config import ModelConfig
from edge_agent.models import DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY
from edgetwin_contracts.signing import load_public_key


def bundle_paths(config: ModelConfig) -> tuple[Path, Path]:
    """(bundle folder, public key file): the configured ones or the shipped default."""
    if config.bundle is None:
        return DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY
    assert config.public_key is not None  # the config validator guarantees it
    return config.bundle, config.public_key


def load_model(config: ModelConfig) -> LoadedModel:
    """Verify and load the configured bundle.

    Raises BundleRejected (bad bundle), KeyInvalid (bad key file), BackendUnavailable.
    """
    bundle, key = bundle_paths(config)
    return load_bundle(
        bundle, load_public_key(key), backend=config.backend, num_threads=config.num_threads
    )
