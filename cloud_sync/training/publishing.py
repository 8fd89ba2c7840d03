"""How a retrain publishes what it promotes, forecaster or twin alike, and the shapes its
steps share: the progress printer and the fleet's report folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from cloud_sync.config import CloudConfig

Say = Callable[[str], None]
"""Prints one progress line."""
Publisher = Callable[[str, str, Path, Path], str]
"""(device, version, bundle_dir, report_dir) -> a sentence on where it was published."""
FLEET_DIR = "fleet"
"""The fleet models' folder in the reports folder."""


def releases_publisher(engine: Engine, config: CloudConfig) -> Publisher | None:
    """Publishing to the device through ``cloud_sync.releases.publish_release`` (the
    bundle re-signed with [releases] private_key when set; a twin bundle becomes a twin
    release); None when [releases] public_key is not set (the promoted bundle then stays
    in its report folder)."""
    from cloud_sync.errors import RequestRejected
    from cloud_sync.releases import publish_release
    from cloud_sync.releases.config import make_store, private_key

    if config.releases.public_key is None:
        return None
    store = make_store(config)
    key = private_key(config)

    def publish(device: str, version: str, bundle_dir: Path, report_dir: Path) -> str:
        try:
            release = publish_release(
                engine,
                store,
                bundle_dir,
                version=version,
                device=device,
                report_dir=report_dir,
                private_key=key,
            )
        except RequestRejected as exc:  # BundleRefused, ReleaseExists, ReleaseInvalid...
            return f"NOT published ({type(exc).__name__}: {exc}); bundle left in {bundle_dir}"
        return f"published as release {release.id} ({release.model_name} {release.version})"

    return publish
