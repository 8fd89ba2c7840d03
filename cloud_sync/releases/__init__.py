"""Model releases: a content-addressed bundle store, releases and staged rollouts.

See docs/releases.md. ``publish_release`` is the entry point for training.
"""

from cloud_sync.releases.rollout import (
    AssignmentStatus,
    EvaluationResult,
    ReleaseInfo,
    ReleaseState,
    evaluate_rollouts,
    get_release,
    list_releases,
    publish_release,
    rollback,
    stop_release,
)
from cloud_sync.releases.signing import keygen, sign_bundle
from cloud_sync.releases.store import BundleStore, StoredBundle

__all__ = [
    "AssignmentStatus",
    "BundleStore",
    "EvaluationResult",
    "ReleaseInfo",
    "ReleaseState",
    "StoredBundle",
    "evaluate_rollouts",
    "get_release",
    "keygen",
    "list_releases",
    "publish_release",
    "rollback",
    "sign_bundle",
    "stop_release",
]
