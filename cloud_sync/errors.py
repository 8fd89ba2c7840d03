"""Errors of the cloud service, named for what the caller should do.

Request errors carry their HTTP status and a ``detail`` the client can act on; the HTTP
layer maps them one to one (``cloud_sync.http.error_model``), so each bad-input test is one
``pytest.raises`` or one status check. Nothing of a rejected request is stored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from edgetwin_common.errors import EdgetwinError


class CloudSyncError(EdgetwinError):
    """The root of every error the cloud service raises on purpose. A bad config is
    ``edgetwin_common.errors.ConfigInvalid`` (the device's config raises it too)."""


class DatabaseUnavailable(CloudSyncError):
    """The database did not answer: transient, retry later (HTTP 503, CLI exit 3)."""


class RequestRejected(CloudSyncError):
    """A request the service refuses. ``status`` is the HTTP status; ``detail`` says why.

    4xx: fix the request, retrying it unchanged gets the same answer.
    """

    status: ClassVar[int] = 400

    def __init__(self, detail: Any, headers: dict[str, str] | None = None) -> None:
        self.detail = detail
        self.headers = headers or {}
        super().__init__(detail if isinstance(detail, str) else repr(detail))


class BodyMalformed(RequestRejected):
    """Not JSON, not valid gzip, or truncated (400): a bug in the sender; don't resend it."""

    status = 400


class TokenRejected(RequestRejected):
    """No bearer token, or one that matches no device and not the admin (401): re-provision."""

    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, {"WWW-Authenticate": "Bearer"})


class AccessDenied(RequestRejected):
    """A valid token that may not do this (403): a device asking for another device's data,
    or a device token on an admin route."""

    status = 403


class DeviceNotFound(RequestRejected):
    """No device with that name (404)."""

    status = 404


class DeviceExists(RequestRejected):
    """A device with that name is registered already (409): pick another name."""

    status = 409


class SequenceOutOfOrder(RequestRejected):
    """A batch sequence below the device's highest stored one that was never stored (409).

    The device resent something it had given up on, or its outbox was reset: it must not
    retry this batch; see docs/cloud.md (sequence numbers).
    """

    status = 409


class VersionConflict(RequestRejected):
    """A desired-state write based on a stale version (409): re-read, merge, retry."""

    status = 409


class BodyTooLarge(RequestRejected):
    """Body above MAX_BATCH_BYTES, or above MAX_BATCH_DECOMPRESSED_BYTES once inflated
    (413): split the batch; resending it unchanged never succeeds."""

    status = 413


class EncodingUnsupported(RequestRejected):
    """A Content-Encoding other than gzip or identity (415)."""

    status = 415


class BatchInvalid(RequestRejected):
    """Valid JSON that breaks the schema, or timestamps too far in the future (422).

    ``detail`` is a list of ``{"loc": [...], "msg": ..., "type": ...}``, one per problem,
    the shape FastAPI uses for its own validation errors.
    """

    status = 422


class ReleaseKindMismatch(RequestRejected):
    """A desired-state write naming a release of the other kind (422): a twin release's
    version as ``model_version``, or a model release's as ``twin_version``. ``detail``
    names the field; set the version in the other key."""

    status = 422


class PreconditionRequired(RequestRejected):
    """A desired-state write without If-Match (or a body ``version``) (428)."""

    status = 428


class ScenarioRefused(RequestRejected):
    """A what-if scenario the device's twin cannot run (422); ``detail`` names the field."""

    status = 422


class TwinStateMissing(RequestRejected):
    """The synced summaries lack the periods the twin starts from (409): wait for the
    device to sync them."""

    status = 409
