"""Errors of model releases, named for what the caller should do.

Each is a ``RequestRejected`` with its HTTP status, so the app's one handler maps them.
"""

from __future__ import annotations

from cloud_sync.errors import RequestRejected


class BundleRefused(RequestRejected):
    """The bundle failed verification against the fleet's release public key, or is
    incomplete (422): sign it with the release key (``cloud-sync releases publish
    --sign``, or [releases] private_key) and publish again."""

    status = 422


class BundleNotStored(RequestRejected):
    """No stored bundle with that sha256 (404)."""

    status = 404


class ReleaseNotFound(RequestRejected):
    """No release with that id, or no release with that version (404)."""

    status = 404


class ReleaseExists(RequestRejected):
    """This model name already has a release with that version (409): bump the version."""

    status = 409


class ReleaseInvalid(RequestRejected):
    """A release that cannot be rolled out as asked (422): an unknown target device, an
    empty canary group, both a device and a canary, a percentage out of 1..100."""

    status = 422


class VersionMarkedBad(RequestRejected):
    """The device rejected or rolled back this version before (409): it is not offered
    to that device again; publish a new version."""

    status = 409


class ReleasesNotConfigured(RequestRejected):
    """[releases] public_key is not set (409 on the API, exit 2 on the CLI): without the
    fleet's public key no bundle can be verified, so none is stored. Configure it."""

    status = 409


class RangeRefused(RequestRejected):
    """A download's ``Range`` starts past the end of the archive (416): restart the
    download from byte 0 (the archive is not the one the partial file came from)."""

    status = 416
