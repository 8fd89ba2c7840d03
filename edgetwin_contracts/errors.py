"""Every way a model bundle can be rejected, one class each.

A ``BundleRejected`` means: do not use this bundle, keep serving the current model.
The message always names the bundle path and what exactly is wrong.
"""

from __future__ import annotations

from edgetwin_common.errors import EdgetwinError


class ContractError(EdgetwinError):
    """The root of every error of the shared contracts (bundles, keys)."""


class BundleRejected(ContractError):
    """The bundle must not be used; the caller keeps its current model."""

    reason = "rejected"

    def __init__(self, bundle: str, detail: str) -> None:
        self.bundle = bundle
        self.detail = detail
        super().__init__(f"model bundle {bundle}: {self.reason}: {detail}")


class BundleIncomplete(BundleRejected):
    """A file the bundle needs (model.tflite, manifest.json, manifest.sig) is missing."""

    reason = "incomplete"


class BundleFileNotRegular(BundleRejected):
    """A bundle file is a symlink, a FIFO, a device or a folder: only regular files are
    read (a FIFO would block the reader, a symlink could point anywhere)."""

    reason = "not a regular file"


class BundleTooLarge(BundleRejected):
    """A bundle file is larger than the loader accepts (guards memory on small boards)."""

    reason = "too large"


class SignatureMissing(BundleRejected):
    """No detached signature: an unsigned bundle is never loaded."""

    reason = "unsigned"


class SignatureInvalid(BundleRejected):
    """The manifest signature does not verify against the trusted public key."""

    reason = "bad signature"


class ManifestInvalid(BundleRejected):
    """The manifest is not valid JSON or does not match the schema (fields listed)."""

    reason = "invalid manifest"


class SchemaVersionUnsupported(BundleRejected):
    """The manifest's schema_version is one this code does not understand."""

    reason = "unsupported schema version"


class ModelSizeMismatch(BundleRejected):
    """model.tflite is not the size the manifest says (a truncated or padded file)."""

    reason = "model size mismatch"


class ModelHashMismatch(BundleRejected):
    """model.tflite's sha256 is not the one the signed manifest records (tampered)."""

    reason = "model hash mismatch"


class ModelUnloadable(BundleRejected):
    """The interpreter refused the (verified) model file."""

    reason = "model unloadable"


class TensorSpecMismatch(BundleRejected):
    """The model's tensors disagree with the manifest (shape, dtype or quantization)."""

    reason = "tensor spec mismatch"


class GoldenVectorMismatch(BundleRejected):
    """The model does not reproduce the golden vectors recorded at export."""

    reason = "golden vectors do not reproduce"


class KeyInvalid(ContractError):
    """A key file could not be read as an Ed25519 key of the expected kind."""
