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
unknown keys are errors, every problem is listed with its key path, and the exit code is
2. A commented example: `examples/agent.toml`. This page is generated from the config
models (`python -m edge_agent.config.doc > docs/configuration.md`); a test keeps it in sync.
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


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return list(dict.fromkeys(found))


def _section(title: str, model: type[BaseModel], out: list[str], tag: str = "") -> None:
    out.append(f"\n## `{title}`{tag}\n")
    if model.__doc__:
        out.append(" ".join(model.__doc__.split()) + "\n")
    out.append("| key | type | default | description |")
    out.append("|---|---|---|---|")
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        description = " ".join((field.description or "").split())
        out.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |"
        )
        for sub in _models_in(field.annotation):
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
        _section(key, sub, out, suffix)


def render() -> str:
    out = [HEADER]
    _section("(top level)", AgentConfig, out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
