"""Which model bundle and key the config asks for, and loading it.

At start the model an OTA update installed (``models_dir/current.json``) comes first;
if it is missing or no longer verifies, the one before it, then the configured (or
shipped) bundle: the agent always starts with a model that verifies.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge_agent.config import AgentConfig, ModelConfig
from edge_agent.model.bundle import LoadedModel, load_bundle
from edge_agent.model.ota.layout import ModelsDir
from edge_agent.model.shipped import DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY
from edgetwin_contracts.errors import BundleRejected, KeyInvalid
from edgetwin_contracts.signing import load_public_key

log = logging.getLogger(__name__)


def bundle_paths(config: ModelConfig) -> tuple[Path, Path]:
    """(bundle folder, public key file): the configured ones or the shipped default."""
    if config.bundle is None:
        return DEFAULT_BUNDLE, DEFAULT_PUBLIC_KEY
    assert config.public_key is not None  # the config validator guarantees it
    return config.bundle, config.public_key


def release_key_path(config: AgentConfig) -> Path:
    """The key OTA releases must be signed with: [ota] release_public_key, else [model]
    public_key, else the shipped model's key."""
    return config.ota.release_public_key or config.model.public_key or DEFAULT_PUBLIC_KEY


def load_model(
    config: ModelConfig, models: ModelsDir | None = None, release_key: Path | None = None
) -> LoadedModel:
    """Verify and load the model to start with: the installed OTA release named by
    ``models``' pointer (verified with ``release_key``), its predecessor, or the
    configured bundle.

    Raises BundleRejected (bad configured bundle), KeyInvalid (bad key file),
    BackendUnavailable.
    """
    if models is not None and release_key is not None:
        installed = _load_installed(config, models, release_key)
        if installed is not None:
            return installed
    bundle, key = bundle_paths(config)
    return load_bundle(
        bundle, load_public_key(key), backend=config.backend, num_threads=config.num_threads
    )


def _load_installed(
    config: ModelConfig, models: ModelsDir, release_key: Path
) -> LoadedModel | None:
    pointer = models.current()
    if pointer is None:
        return None
    try:
        key = load_public_key(release_key)
    except KeyInvalid as exc:
        log.error("release key unusable, starting with the configured model: %s", exc)
        return None
    for name in (pointer.dir, pointer.previous):
        if not name:
            continue
        try:
            return load_bundle(
                models.path(name), key, backend=config.backend, num_threads=config.num_threads
            )
        except BundleRejected as exc:
            log.error("installed model %s unusable: %s", name, exc)
    return None
