"""Errors of the cloud sync, named for what the worker does about them (docs/sync.md)."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError, TransientError


class CloudUnavailable(TransientError):
    """The cloud did not answer usefully (connection refused or dropped, timeout, 5xx,
    an unexpected status or an unreadable acknowledgement): back off and resend the same
    batch."""


class CloudUnauthorized(EdgeAgentError):
    """The cloud refused the device token (401/403). Fatal until the token in [sync]
    changes: logged once, retried every backoff.max_s."""


class BatchRejected(EdgeAgentError):
    """The cloud refused this batch as it is (400, 413, 415, 422) and stored nothing:
    resending it unchanged cannot help. The worker drops the batch (its rows stay queued)
    and sends smaller ones, quarantining a row the cloud refuses on its own."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


class BatchOutOfOrder(EdgeAgentError):
    """409: the sequence is below the cloud's highest stored one and was never seen (the
    device's store was replaced). The worker jumps past the cloud's last sequence."""


class CloudSequenceOutOfRange(EdgeAgentError):
    """The cloud reports a last sequence for this device beyond ``MAX_SEQUENCE`` (or
    this store reached it): the device does not follow it. The worker sends nothing,
    reads the twin every backoff.max_s, and resumes by itself once the cloud reports a
    sequence in range (docs/sync.md, "Sequences out of range")."""

    def __init__(self, sequence: int, bound: int) -> None:
        self.sequence = sequence
        self.bound = bound
        super().__init__(
            f"the cloud holds sequence {sequence} for this device, beyond {bound}: not"
            " continuing from it (a batch this device never sent?); reset the device's"
            " sequence on the cloud"
        )
