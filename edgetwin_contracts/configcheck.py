"""TOML configs validated by a pydantic model, with every problem named by its key path.

Shared by the device (``edge_agent.config``) and the cloud (``cloud_sync.config``) so a
user sees the same kind of message from both: ``key.path: what is wrong (got value)``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_SECRET_WORDS = ("token", "password", "secret")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config: where (dotted key path), the value found, and why."""

    path: str
    value: object
    message: str

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{self.path}: {self.message}{shown}"


class ConfigInvalid(Exception):
    """The config has problems; nothing is started. Fix the file (exit code 2)."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


def validate_toml(text: str, model: type[M], source: str = "<config>") -> M:
    """Parse TOML text into ``model``. Raises ConfigInvalid listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(source, [ConfigProblem("<toml>", None, str(exc))]) from None
    return validate_data(data, model, source)


def validate_data(data: Any, model: type[M], source: str, prefix: str = "") -> M:
    """Validate already parsed data. Raises ConfigInvalid listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigInvalid(source, problems_from(exc, data, prefix)) from None


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
