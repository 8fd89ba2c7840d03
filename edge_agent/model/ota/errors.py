"""Every way an update can be refused, one class each (all ``UpdateRejected``).

A bundle refused by the verifier raises ``edgetwin_contracts.errors.BundleRejected``
instead; the manager reports both the same way: REJECTED with the message as reason,
an alarm, and the previous model keeps serving.
"""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError


class UpdateRejected(EdgeAgentError):
    """Do not install this release; keep serving the current model."""

    reason = "rejected"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}")


class DownloadTooLarge(UpdateRejected):
    """The release (declared or as served) is larger than [ota] max_bundle_bytes."""

    reason = "too large"


class NotAnArchive(UpdateRejected):
    """The server answered something that is not a tar archive (an HTML page, JSON)."""

    reason = "not a bundle archive"


class DownloadFailed(UpdateRejected):
    """The download could not be completed (truncated, refused) after the retries."""

    reason = "download failed"


class ArchiveMismatch(UpdateRejected):
    """The archive's size or sha256 is not the one the release declares."""

    reason = "archive mismatch"


class ArchiveUnsafe(UpdateRejected):
    """The archive holds something besides the three bundle files as regular files
    (links, paths, devices, duplicates)."""

    reason = "unsafe archive"


class Downgrade(UpdateRejected):
    """Anti-rollback: the release is older than the running model and the cloud did not
    ask for a rollback."""

    reason = "older than the running model"


class Incompatible(UpdateRejected):
    """The model cannot replace the running one in place (other horizons or window)."""

    reason = "incompatible with the running model"


class PeriodMismatch(UpdateRejected):
    """A channel delivers samples less often than the model's period
    (``input.sample_period_s``): the model cannot be fed at the period it was trained at."""

    reason = "period mismatch"


class ImplausibleForecast(UpdateRejected):
    """The self-test's forecasts leave the plausible range of a channel (its cleaning
    limits, or far beyond the range of the golden windows)."""

    reason = "implausible forecasts"


class SelfTestFailed(UpdateRejected):
    """The child process that loads the bundle crashed, timed out or refused it."""

    reason = "self-test failed"


class KnownBad(UpdateRejected):
    """This device already rejected or rolled back this release."""

    reason = "known bad on this device"


class DownloadInterrupted(EdgeAgentError):
    """Transient: the transfer stopped early; the partial file stays for a resume."""
