"""The release model: a release's states, its per-device assignments, and what the API,
the CLI and an evaluation pass report about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel

from edgetwin_contracts.batch import (
    DesiredState,
    ModelRelease,
    ModelReport,
    ModelUpdateReport,
    ReportedState,
)
from edgetwin_contracts.manifest import Manifest

MAX_REASON = 1000
"""Characters of a reason kept on a release or an assignment."""


class ReleaseKind(StrEnum):
    """What a release installs on a device; each kind has its own slot in the desired
    and the reported state (named alike: ``desired.model`` / ``desired.twin``,
    ``reported.model_update`` / ``reported.twin_update``), so a model release and a twin
    release roll out to the same device independently."""

    MODEL = "model"
    """A per-channel forecaster (``desired.model_version`` / ``desired.model``)."""
    TWIN = "twin"
    """A cross-channel twin, a bundle with a ``twin`` spec (``desired.twin_version`` /
    ``desired.twin``, docs/twin.md)."""

    @classmethod
    def of(cls, manifest: Manifest) -> ReleaseKind:
        """The kind of a bundle, from its manifest: a twin spec makes it a twin."""
        return cls.MODEL if manifest.twin is None else cls.TWIN

    def desired_version(self, desired: DesiredState) -> str | None:
        """The version the desired state asks for in this kind's slot."""
        return desired.model_version if self is ReleaseKind.MODEL else desired.twin_version

    def desired_release(self, desired: DesiredState) -> ModelRelease | None:
        """The release in this kind's slot of the desired state."""
        return desired.model if self is ReleaseKind.MODEL else desired.twin

    def in_service(self, reported: ReportedState) -> ModelReport | None:
        """What the device reports running in this kind's slot."""
        return reported.model if self is ReleaseKind.MODEL else reported.twin

    def update_report(self, reported: ReportedState) -> ModelUpdateReport | None:
        """Where the device is with the desired release of this kind."""
        return reported.model_update if self is ReleaseKind.MODEL else reported.twin_update


class ReleaseState(StrEnum):
    STAGED = "staged"
    """Created; nothing offered yet."""
    CANARY = "canary"
    """Offered to the first stage of several; waiting for those devices."""
    WIDENING = "widening"
    """Offered to a later stage (or the only one); waiting for those devices."""
    COMPLETE = "complete"
    """The last stage is offered and every device installed it or marked it bad."""
    STOPPED = "stopped"
    """A device of a stage before the last refused it, or an admin stopped it."""


ACTIVE_STATES = (ReleaseState.STAGED, ReleaseState.CANARY, ReleaseState.WIDENING)


class AssignmentStatus(StrEnum):
    OFFERED = "offered"
    """In the device's desired state; not reported installed yet."""
    INSTALLED = "installed"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    """Another release replaced this offer before the device installed it."""
    WITHDRAWN = "withdrawn"
    """The release stopped before the device installed it; its previous model is back."""
    SKIPPED = "skipped"
    """Never offered: the device cannot run it (a channel delivers samples less often
    than the model's period; a twin release to a device that reports no twin); the
    rollout goes on without it."""


BAD = (AssignmentStatus.REJECTED, AssignmentStatus.ROLLED_BACK)
LIVE = (AssignmentStatus.OFFERED, AssignmentStatus.INSTALLED)
"""Assignments whose bundle the device may download."""
MANUAL_STAGE = -1
"""Stage of an assignment made by ``rollback`` (outside the plan)."""


class AssignmentInfo(BaseModel):
    device: str
    stage: int
    """Index into the release's stages; -1: an explicit rollback."""
    status: AssignmentStatus
    reason: str | None
    ts: float


class ReleaseInfo(BaseModel):
    """A release as the API and the CLI show it."""

    id: int
    kind: ReleaseKind
    """model: offered as the device's desired model; twin: as its desired twin."""
    model_name: str
    """The manifest's model.name (a twin's name for a twin release)."""
    version: str
    sha256: str
    """Of the bundle archive."""
    size_bytes: int
    url: str
    """Where devices fetch the archive (with their token)."""
    created_at: float
    target: dict[str, str | bool]
    """{"device": name} or {"fleet": true}."""
    canary_group: str | None
    canary_percent: int | None
    stages: list[dict[str, str | int]]
    stage: int
    state: ReleaseState
    reason: str | None
    """Why it stopped."""
    updated_at: float
    has_report: bool
    assignments: list[AssignmentInfo] = []


@dataclass(slots=True)
class EvaluationResult:
    """What one ``evaluate_rollouts`` pass (or a publish) changed."""

    installed: list[tuple[int, str]] = field(default_factory=list)
    """(release id, device) newly installed."""
    marked_bad: list[tuple[int, str, str]] = field(default_factory=list)
    """(release id, device, reason)."""
    widened: list[tuple[int, int]] = field(default_factory=list)
    """(release id, new stage)."""
    stopped: list[tuple[int, str]] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    offered: list[tuple[int, str]] = field(default_factory=list)

    @property
    def is_change(self) -> bool:
        """Whether a release widened, stopped or completed, or a device marked one bad."""
        return bool(self.widened or self.stopped or self.completed or self.marked_bad)


def bundle_url(sha256: str) -> str:
    """Where a device downloads the archive with this sha256 (relative to the cloud URL)."""
    return f"/v1/releases/{sha256}/bundle"
