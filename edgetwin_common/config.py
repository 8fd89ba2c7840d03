"""Config models and TOML loading shared by every edgetwin config.

``Strict`` is the base of every config model (unknown keys are errors, values immutable,
attribute docstrings become the generated docs); ``Name`` is the one name type of
channels, sources, rules and actions. TOML files are validated by a pydantic model with
every problem named by its key path, so a user sees the same kind of message from the
device (``edge_agent.config``) and the cloud (``cloud_sync.config``):
``key.path: what is wrong (got value)``. A renamed key keeps working: its model notes
the old spelling (``renamed_key`` or ``note_deprecated``) and loading logs one warning
line per note, after validation (validating does no I/O).
"""

from __future__ import annotations

import json
import logging
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from edgetwin_common.errors import ConfigInvalid, ConfigProblem

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

DEPRECATED = "deprecated"
"""Key of the validation context's list of deprecation notes."""
MORE_PROBLEMS = "more_problems"
"""Key of the validation context's list of problems a model found beside pydantic's own
errors (``note_problem``): a config is reported whole, in one pass."""

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
"""A channel's, source's, rule's or action's name: 1-64 letters, digits, ``_``, ``.`` and
``-`` (names appear in metric labels, URLs, file names and the twin)."""


class Strict(BaseModel):
    """The base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


_SECRET_WORDS = ("token", "password", "secret")


def renamed_key(data: Any, old: str, new: str, where: str, info: ValidationInfo) -> Any:
    """Accept ``old``, the former spelling of the key ``new``, in a table about to be
    validated: return a copy with its value under ``new``, and note the deprecation
    (``note_deprecated``) naming ``where`` (the table, e.g. ``[[alarms]] 'hot'``).
    Anything else (not a table, no ``old``, or both keys given) is returned as is, so
    strict validation names the stray key. Call it from a ``mode="before"`` validator.
    """
    if not isinstance(data, dict) or old not in data or new in data:
        return data
    note_deprecated(info, deprecation(where, old, new))
    return {new if key == old else key: value for key, value in data.items()}


def deprecation(where: str, old: str, new: str) -> str:
    """The one wording of a deprecation note: ``where: old is deprecated, use new``."""
    return f"{where}: {old} is deprecated, use {new}"


def validate_toml(text: str, model: type[M], source: str = "<config>") -> M:
    """Parse TOML text into ``model``. Raises ConfigInvalid listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(source, [ConfigProblem("<toml>", None, str(exc))]) from None
    return validate_data(data, model, source)


def note_deprecated(info: ValidationInfo, note: str) -> None:
    """For a validator that accepted an old spelling: record ``note`` (one line naming the
    new key), which ``validate_data`` logs as a warning once the file is validated.
    Validating no I/O: a model validated directly, without that context, notes nothing."""
    if isinstance(info.context, dict):
        info.context.setdefault(DEPRECATED, []).append(note)


def note_problem(info: ValidationInfo, path: str, message: str) -> None:
    """For a model whose fields failed (so its ``mode="after"`` checks never ran): record
    a problem it can still see in the raw data (an unknown action, say), reported with
    pydantic's own errors by ``validate_data``."""
    if isinstance(info.context, dict):
        info.context.setdefault(MORE_PROBLEMS, []).append(ConfigProblem(path, None, message))


def validate_data(data: Any, model: type[M], source: str, prefix: str = "") -> M:
    """Validate already parsed data with strict types (TOML's own: a string where a
    number belongs is an error, not converted). Raises ConfigInvalid listing every
    problem. Logs one warning per deprecated spelling found (``source: note``)."""
    context: dict[str, list[Any]] = {DEPRECATED: [], MORE_PROBLEMS: []}
    try:
        # JSON mode + strict: strings stay strings, numbers numbers, booleans booleans,
        # while a path or an enum still comes from its string (as TOML writes them).
        text = json.dumps(data, default=_toml_scalar, allow_nan=True)
        return model.model_validate_json(text, strict=True, context=context)
    except ValidationError as exc:
        problems = problems_from(exc, data, prefix)
        seen = {(p.path, p.message) for p in problems}
        for extra in context[MORE_PROBLEMS]:
            path = ".".join(p for p in (prefix, extra.path) if p)
            if (path, extra.message) not in seen:
                problems.append(ConfigProblem(path, extra.value, extra.message))
        raise ConfigInvalid(source, problems) from None
    finally:
        for note in dict.fromkeys(context[DEPRECATED]):
            log.warning("%s: %s", source, note)


def _toml_scalar(value: Any) -> Any:
    """TOML's date and time values (and a Path given by code) as JSON strings."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a TOML value")


def read_toml(path: Path, model: type[M]) -> M:
    """Read and validate a TOML file; an unreadable file is a ConfigInvalid too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(str(path), [ConfigProblem("<file>", None, str(exc))]) from None
    return validate_toml(text, model, str(path))


def problems_from(exc: ValidationError, data: Any, prefix: str = "") -> list[ConfigProblem]:
    """One ConfigProblem per pydantic error, with the key path the user wrote."""
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "value_error" and not loc:
            # A model-level check that lists several "path: message" problems.
            for part in message.split("; "):
                key, _, text = part.partition(": ")
                problems.append(ConfigProblem(key if text else "<root>", None, text or key))
            continue
        path = _user_path(loc, data)
        value = err.get("input")
        if err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            path = [*path, str(ctx.get("discriminator", "")).strip("'")]
            value = ctx.get("tag")
            message = f"must be one of {ctx.get('expected_tags')}"
        text_path = ".".join(p for p in [prefix, *path] if p) or "<root>"
        if err["type"] == "missing" or isinstance(value, dict | list):
            value = None  # a whole table would bury the message
        if any(word in text_path for word in _SECRET_WORDS):
            value = None  # never echo a secret back
        problems.append(ConfigProblem(text_path, value, message))
    return problems


def _user_path(loc: list[Any], data: Any) -> list[str]:
    """Drop the tags pydantic inserts for discriminated unions ("sources.0.serial.port"
    → "sources.0.port"): a tag is a part absent from the user's table but equal to one of
    its values."""
    out: list[str] = []
    node = data
    for part in loc:
        if (
            isinstance(node, dict)
            and isinstance(part, str)
            and part not in node
            and part in {v for v in node.values() if isinstance(v, str)}
        ):
            continue
        out.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return out
