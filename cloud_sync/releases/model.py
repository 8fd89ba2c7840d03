"""The release model: a release's states, its per-device assignments, and what the API,
the CLI and an evaluation pass report about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel

MAX_REASON = 1000
"""Characters of a reason kept on a release or an assignment."""


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
    than the model's period); the rollout goes on without it."""


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
    model_name: str
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
