"""Model and twin releases: a content-addressed bundle store, releases and staged
rollouts (a release's kind, model or twin, comes from its bundle).

See docs/releases.md. One job per module: ``store`` (bundle archives), ``signing``,
``model`` (states, assignments, what is reported), ``records`` (release rows and the
answers built from them), ``stages`` (the plan, and which devices a stage names),
``offers`` (a release into a device's desired model or twin through the twin module,
and back),
``rollout`` (decisions from what devices report), ``publish`` (the entry point for
training), ``groups`` (canary groups).
"""

from cloud_sync.releases.model import (
    AssignmentStatus,
    EvaluationResult,
    ReleaseInfo,
    ReleaseKind,
    ReleaseState,
)
from cloud_sync.releases.offers import rollback
from cloud_sync.releases.publish import publish_release
from cloud_sync.releases.records import get_release, list_releases
from cloud_sync.releases.rollout import evaluate_rollouts, stop_release
from cloud_sync.releases.signing import keygen, sign_bundle
from cloud_sync.releases.store import BundleStore, StoredBundle

__all__ = [
    "AssignmentStatus",
    "BundleStore",
    "EvaluationResult",
    "ReleaseInfo",
    "ReleaseKind",
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
