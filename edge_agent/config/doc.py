"""Generates docs/configuration.md from the config models (a test keeps it in sync).

Run: ``python -m edge_agent.config.doc > docs/configuration.md``.
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edge_agent.config import AgentConfig

HEADER = """# Configuration reference

One TOML file, validated at start by `edge-agent check-config FILE` (and by `run`):
unknown keys are errors, types are strict (TOML's own: `port = "8080"` is an error, not a
port; an integer is fine where a float belongs), every problem is listed with its key
path in one pass (names used twice and references to unknown actions or channels
included, even beside other errors), and the exit code is 2. To start from a commented
config: `edge-agent init-config agent.toml` (the file `edge-agent install` writes); a
fuller example is `examples/agent.toml` in the source. This page is generated from the
config models (`python -m edge_agent.config.doc > docs/configuration.md`); a test keeps
it in sync.

Renamed keys still load, with one warning line each naming the new key (printed by
`check-config`, logged at start): every section that retries has one `backoff` table,
`{ initial_s, max_s }` (`edgetwin_common/retry.py`), which replaced `reconnect_min_s` and
`reconnect_max_s` (serial, modbus, gpio sources), `backoff_initial_s` and `backoff_max_s`
(webhook action), `backoff_min_s` and `backoff_max_s` (`[sync]`) and `download_retry_s`
(`[ota]`: both ends). A `backoff` table may give one key: the other keeps its section's
default.
"""


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        names = list(dict.fromkeys(_type_name(a) for a in get_args(annotation)))
        return " or ".join(names)
    if origin is typing.Literal:
        return ", ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        args = get_args(annotation)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        _, value = get_args(annotation)
        return f"table of {_type_name(value)}"
    if annotation is type(None):
        return "none"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return ", ".join(f'"{m.value}"' for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        if not _has_defaults(type(value)):
            # A model without defaults of its own (backoff): the owner's are the defaults.
            pairs = ", ".join(f"{k} = {v!r}" for k, v in value.model_dump().items())
            return f"`{{{pairs}}}`"
        return "(table)"
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list) and value and isinstance(value[0], Enum):
        value = [v.value for v in value]
    return f"`{value}`"


def _has_defaults(model: type[BaseModel]) -> bool:
    return not any(f.is_required() for f in model.model_fields.values())


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return list(dict.fromkeys(found))


def _section(
    title: str,
    model: type[BaseModel],
    out: list[str],
    tag: str = "",
    shared: dict[type[BaseModel], str] | None = None,
) -> None:
    """Append the section of ``model``, then those of the models in its fields. A table
    whose defaults are its owner's (backoff) is shown once, where it first appears
    (``shared``: model -> that title); later owners point there."""
    shared = {} if shared is None else shared
    out.append(f"\n## `{title}`{tag}\n")
    if model.__doc__:
        out.append(" ".join(model.__doc__.split()) + "\n")
    out.append("| key | type | default | description |")
    out.append("|---|---|---|---|")
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        description = " ".join((field.description or "").split())
        type_name = _type_name(field.annotation)
        if field.annotation in shared:
            type_name = f"table (keys: `{shared[field.annotation]}`)"
        default = _default(field)
        if model in shared and default == "required":
            default = "the section's"  # filled in from its owner's default
        out.append(f"| `{name}` | {type_name} | {default} | {description} |")
        for sub in _models_in(field.annotation):
            if sub not in shared:
                nested.append((name, sub))
    for name, sub in nested:
        suffix = ""
        for tag_field in ("type", "method"):
            tag_info = sub.model_fields.get(tag_field)
            if tag_info is None:
                continue
            annotation = tag_info.annotation
            # A Literal tag discriminates a union; an enum field is plain data.
            if not (isinstance(annotation, type) and issubclass(annotation, Enum)):
                suffix = f" with {tag_field} = {_type_name(annotation)}"
                break
        annotation_name = _type_name(model.model_fields[name].annotation)
        key = f"{title}.{name}" if title != "(top level)" else name
        if annotation_name.startswith("list of"):
            # A list inside a list table is [[sources.registers]] in TOML.
            key = f"[[{key.replace('[[', '').replace(']]', '')}]]"
        elif annotation_name.startswith("table of"):
            key = f"{key}.<name>"
        if model.model_fields[name].annotation is sub and not _has_defaults(sub):
            shared[sub] = key
        _section(key, sub, out, suffix, shared)


def render() -> str:
    out = [HEADER]
    _section("(top level)", AgentConfig, out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
