"""The model bundle manifest (``manifest.json``), schema version 1.

A bundle is a folder (or the same three files anywhere)::

    model.tflite    full-integer int8 TFLite flatbuffer
    manifest.json   this schema, UTF-8 JSON
    manifest.sig    64-byte detached Ed25519 signature of manifest.json's exact bytes

The manifest records model.tflite's size and sha256, so the signature covers the model
too. See docs/bundle.md for the field-by-field description.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from edgetwin_contracts.errors import ManifestInvalid, SchemaVersionUnsupported

SCHEMA_VERSION = 1
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"

RELEASE_VERSION_PATTERN = r"^[A-Za-z0-9._-]+$"


def _not_dots(version: str) -> str:
    if version in {".", ".."}:
        raise ValueError(f"version {version!r} is a path component, not a version")
    return version


ReleaseVersion = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=RELEASE_VERSION_PATTERN),
    AfterValidator(_not_dots),
]
"""A release version: letters, digits, '.', '_' and '-' only, and not '.' or '..', so a
version is always safe as one folder name and never a path."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and arrays a manifest may have (a real one has 4)."""
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
PositiveInt = Annotated[int, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelInfo(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
    version: ReleaseVersion
    """Release version, compared by ``version_key`` (dotted integers)."""
    created_at: datetime
    description: str = ""


class ModelFile(_Strict):
    path: Literal["model.tflite"] = "model.tflite"
    sha256: Sha256Hex
    size_bytes: PositiveInt


class NormalizationKind(StrEnum):
    WINDOW_ZSCORE = "window_zscore"
    """Each input window is standardised by its own mean and std on the device."""


class Normalization(_Strict):
    kind: NormalizationKind = NormalizationKind.WINDOW_ZSCORE
    min_std_abs: Annotated[float, Field(gt=0)] = 1e-6
    """Floor on the window std, in channel units, so a flat window does not divide by 0."""
    min_std_rel: Annotated[float, Field(ge=0)] = 1e-3
    """Floor on the window std relative to |mean|: a flat 80 °C window uses std >= 0.08."""


class TensorDType(StrEnum):
    INT8 = "int8"
    FLOAT32 = "float32"


class InputSpec(_Strict):
    channels: list[str] | None = None
    """Channels this model serves, each forecast independently from its own window
    (the model is univariate); None: any channel (the generic default model)."""
    window_length: Annotated[int, Field(ge=2, le=4096)]
    sample_period_s: Annotated[float, Field(gt=0)] | None = None
    """Sample period the model expects; None when it is period-agnostic."""
    normalization: Normalization = Normalization()
    dtype: TensorDType = TensorDType.INT8
    shape: list[PositiveInt]

    @field_validator("shape")
    @classmethod
    def _shape_rank(cls, v: list[int]) -> list[int]:
        if len(v) != 2 or v[0] != 1:
            raise ValueError("input shape must be [1, window_length]")
        return v


class OutputSpec(_Strict):
    horizons: Annotated[list[PositiveInt], Field(min_length=1)]
    """Forecast horizons in samples ahead, ascending; output i forecasts t + horizons[i]."""
    units: str = "channel"
    """'channel': forecasts are in the input channel's own units (after denormalising)."""
    dtype: TensorDType = TensorDType.INT8
    shape: list[PositiveInt]

    @field_validator("horizons")
    @classmethod
    def _ascending(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("horizons must be strictly ascending")
        return v


class QuantParams(_Strict):
    scale: Annotated[float, Field(gt=0)]
    zero_point: Annotated[int, Field(ge=-128, le=127)]


class Quantization(_Strict):
    input: QuantParams
    output: QuantParams


class TrainingSummary(_Strict):
    dataset: str
    """What the model was trained on, e.g. 'synthetic-corpus/v1 seed=7' or a CSV path."""
    dataset_sha256: Sha256Hex | None = None
    series: Annotated[int, Field(ge=0)]
    windows: Annotated[int, Field(ge=0)]
    epochs: Annotated[int, Field(ge=0)]
    notes: dict[str, str | int | float] = Field(default_factory=dict)


class ErrorMetrics(_Strict):
    mae: Annotated[float, Field(ge=0)]
    rmse: Annotated[float, Field(ge=0)]


class ValidationMetrics(_Strict):
    holdout: str
    """How the held-out windows were chosen."""
    windows: PositiveInt
    units: Literal["window_std"] = "window_std"
    """Errors are in units of each window's std (the normalised scale), per horizon mean."""
    float32: ErrorMetrics
    int8: ErrorMetrics
    int8_mae_increase: float
    """(int8 MAE - float32 MAE) / float32 MAE on the same windows."""


class GoldenVector(_Strict):
    input: Annotated[list[float], Field(min_length=2)]
    """A raw input window in channel units, oldest first."""
    output_q: list[Annotated[int, Field(ge=-128, le=127)]]
    """The int8 output tensor the exporter's interpreter produced."""
    output: list[float]
    """The same output in channel units (dequantised, denormalised)."""


class Golden(_Strict):
    tolerance_lsb: Annotated[int, Field(ge=0, le=8)] = 1
    """Allowed difference per output, in int8 steps: kernels (XNNPACK vs reference,
    x86 vs arm64) may round the last bit differently."""
    vectors: Annotated[list[GoldenVector], Field(min_length=1)]


class Signing(_Strict):
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    """First 16 hex digits of sha256 of the raw public key that signs this manifest."""


ChannelName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class TwinChannel(_Strict):
    """One channel of a twin model and its fixed normalization, z = (x - center) / scale."""

    name: ChannelName
    center: float
    scale: Annotated[float, Field(gt=0)]
    step_scale: Annotated[float, Field(gt=0)] | None = None
    """Output channels only: the model's output is (x[t+1] - x[t]) / step_scale."""


class TwinSpec(_Strict):
    """A cross-channel step model (a bundle of kind "twin", docs/twin.md).

    Input, one int8 row: the last ``window_steps`` rows of every channel's z-score, time
    major (row t holds ``channels`` in order), then the controls' z-scores for the next
    step. Output: each output channel's next-step change in ``step_scale`` units. The
    model is rolled forward one period at a time under a planned control trajectory.
    """

    kind: Literal["twin"] = "twin"
    channels: Annotated[list[TwinChannel], Field(min_length=2, max_length=64)]
    """Every channel, the outputs first in output-tensor order, then the controls."""
    controls: Annotated[list[ChannelName], Field(min_length=1)]
    """Channels set by the operator (e.g. "load"): inputs only, planned ahead."""
    window_steps: Annotated[int, Field(ge=2, le=512)]
    horizon_steps: Annotated[int, Field(ge=1, le=4096)]
    """Longest roll-forward the residuals below were measured over."""
    residual_std: dict[ChannelName, list[Annotated[float, Field(ge=0)]]]
    """Per output channel, the std of the roll-forward error at steps 1..horizon_steps
    on held-out scenarios, in channel units: the what-if uncertainty band."""

    @property
    def outputs(self) -> list[str]:
        return [c.name for c in self.channels[: len(self.channels) - len(self.controls)]]

    @property
    def input_width(self) -> int:
        return self.window_steps * len(self.channels) + len(self.controls)


class Manifest(_Strict):
    schema_version: Literal[1]
    model: ModelInfo
    file: ModelFile
    input: InputSpec
    output: OutputSpec
    quantization: Quantization
    training: TrainingSummary
    metrics: ValidationMetrics
    golden: Golden
    signing: Signing
    twin: TwinSpec | None = None
    """Present on a cross-channel twin bundle, absent on a per-channel forecaster."""

    @property
    def kind(self) -> Literal["forecaster", "twin"]:
        return "forecaster" if self.twin is None else "twin"

    def to_json_bytes(self) -> bytes:
        """Canonical bytes to sign and store (sorted keys, UTF-8, trailing newline); a
        forecaster's manifest has no ``twin`` key (the bytes it had before twins)."""
        data = self.model_dump(mode="json", exclude={"twin"} if self.twin is None else None)
        text = json.dumps(data, indent=2, sort_keys=True)
        return (text + "\n").encode("utf-8")


def version_key(version: str) -> tuple[int, ...]:
    """Orders release versions: '1.10.0' > '1.9.2'. Each dot-separated part counts by its
    leading digits ('0-rc1' is 0, 'beta' is 0); anything after them is ignored.

    Used by anti-rollback checks; raises nothing.
    """
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d*", piece)
        parts.append(int(digits.group()) if digits and digits.group() else 0)
    return tuple(parts)


def parse_manifest(raw: bytes, bundle: str) -> Manifest:
    """Parse and validate manifest bytes.

    Strict JSON: NaN, Infinity, a key twice in one object (two parsers could read two
    different values under one signature) and nesting deeper than MAX_JSON_DEPTH are
    refused.

    Raises:
        SchemaVersionUnsupported: the manifest declares a schema_version other than 1.
        ManifestInvalid: not JSON, or fields missing / wrong; every problem is listed
            with its key path.
    """
    data = load_strict_json(raw, bundle)
    if not isinstance(data, dict):
        raise ManifestInvalid(bundle, f"{MANIFEST_FILE} must hold a JSON object")
    declared = data.get("schema_version")
    if declared != SCHEMA_VERSION:
        raise SchemaVersionUnsupported(
            bundle,
            f"schema_version is {declared!r}; this software reads schema_version {SCHEMA_VERSION}",
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestInvalid(bundle, format_validation_error(exc)) from None
    _check_consistency(manifest, bundle)
    return manifest


def load_strict_json(raw: bytes, bundle: str) -> Any:
    """The JSON document of manifest bytes. Raises ManifestInvalid for bytes that are not
    UTF-8, not JSON, or hold NaN/Infinity, a duplicated key or too deep a nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestInvalid(bundle, f"{MANIFEST_FILE} is not UTF-8 JSON ({exc})") from None
    depth = max_nesting(text)
    if depth > MAX_JSON_DEPTH:
        raise ManifestInvalid(
            bundle, f"{MANIFEST_FILE} nests {depth} levels deep (at most {MAX_JSON_DEPTH})"
        )
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ManifestInvalid(bundle, f"{MANIFEST_FILE} is not UTF-8 JSON ({exc})") from None
    except ValueError as exc:  # the hooks below, and integers too long to convert
        raise ManifestInvalid(bundle, f"{MANIFEST_FILE}: {exc}") from None


def max_nesting(text: str) -> int:
    """Deepest nesting of [ and { in JSON text, outside strings (counted without parsing,
    so a document nested past the recursion limit never reaches the parser)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {key!r} appears twice in one object")
        obj[key] = value
    return obj


def format_validation_error(exc: ValidationError) -> str:
    """One '<key.path>: message' per problem, joined by '; '."""
    problems = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        problems.append(f"{path}: {err['msg']}")
    return "; ".join(problems)


def _check_consistency(m: Manifest, bundle: str) -> None:
    if m.twin is not None:
        problems = _twin_problems(m, m.twin)
        if problems:
            raise ManifestInvalid(bundle, "; ".join(problems))
        return
    problems = []
    if m.input.shape[1] != m.input.window_length:
        problems.append(
            f"input.shape {m.input.shape} does not hold window_length {m.input.window_length}"
        )
    if m.output.shape != [1, len(m.output.horizons)]:
        problems.append(
            f"output.shape {m.output.shape} does not match {len(m.output.horizons)} horizons"
        )
    for i, vec in enumerate(m.golden.vectors):
        if len(vec.input) != m.input.shape[1]:
            problems.append(f"golden.vectors.{i}.input has {len(vec.input)} values")
        if len(vec.output_q) != len(m.output.horizons) or len(vec.output) != len(m.output.horizons):
            problems.append(f"golden.vectors.{i} output length differs from horizons")
    if problems:
        raise ManifestInvalid(bundle, "; ".join(problems))


def _twin_problems(m: Manifest, twin: TwinSpec) -> list[str]:
    problems = []
    names = [c.name for c in twin.channels]
    if len(set(names)) != len(names):
        problems.append(f"twin.channels names a channel twice: {names}")
    n_out = len(names) - len(twin.controls)
    if n_out < 1:
        problems.append("twin.controls leaves no output channel")
    if names[n_out:] != list(twin.controls):
        problems.append(f"twin.channels must end with the controls {twin.controls} in order")
    for c in twin.channels[:n_out]:
        if c.step_scale is None:
            problems.append(f"twin.channels: output {c.name!r} has no step_scale")
        if len(twin.residual_std.get(c.name, [])) != twin.horizon_steps:
            problems.append(f"twin.residual_std.{c.name} must hold horizon_steps values")
    extra = set(twin.residual_std) - set(names[:n_out])
    if extra:
        problems.append(f"twin.residual_std names channels that are not outputs: {sorted(extra)}")
    if m.input.window_length != twin.window_steps:
        problems.append("input.window_length differs from twin.window_steps")
    if m.input.shape != [1, twin.input_width]:
        problems.append(f"input.shape {m.input.shape} is not [1, {twin.input_width}]")
    if m.output.shape != [1, n_out] or m.output.horizons != [1]:
        problems.append(f"a twin's output is shape [1, {n_out}] at horizons [1]")
    if m.input.sample_period_s is None:
        problems.append("a twin needs input.sample_period_s")
    for i, vec in enumerate(m.golden.vectors):
        if len(vec.input) != twin.input_width or len(vec.output_q) != n_out:
            problems.append(f"golden.vectors.{i} does not match the twin's tensors")
    return problems
