"""The one plugin shape: a config model keyed by ``type``, and what builds from it.

A plugin module declares its config model, whose ``type: Literal["key"]`` field is the
key users write, its implementation, and ``PLUGIN = Plugin(TheConfig, TheImpl)``. Its
family's registry module lists the plugins once; from that list come the config union
(``tagged_union``: a field of any plugin's config, discriminated on ``type``) and the
table from a validated config to its plugin (``PluginTable``). Nothing registers itself
on import.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, Field

__all__ = ["Plugin", "PluginTable", "plugin_key", "tagged_union"]

C = TypeVar("C", bound=BaseModel)
T_co = TypeVar("T_co", covariant=True)


def plugin_key(config: type[BaseModel]) -> str:
    """The key of a plugin config model: the one value of its ``type: Literal[...]``.
    Raises TypeError for a model without such a field (a programming error)."""
    field = config.model_fields.get("type")
    annotation = field.annotation if field is not None else None
    args = get_args(annotation)
    if get_origin(annotation) is not Literal or len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f'{config.__name__} needs a field type: Literal["its key"]')
    return args[0]


@dataclass(frozen=True, slots=True)
class Plugin(Generic[C, T_co]):
    """One plugin: its config model and the callable that builds its implementation from
    a validated config (usually the implementation class itself)."""

    config: type[C]
    build: Callable[[C], T_co]

    @property
    def key(self) -> str:
        """What users write as ``type``."""
        return plugin_key(self.config)


def tagged_union(configs: Iterable[type[BaseModel]]) -> Any:
    """``Annotated[A | B | ..., Field(discriminator="type")]``: the type of a config field
    that takes any of these plugins' configs. Raises TypeError for a key used twice."""
    models = list(configs)
    keys = [plugin_key(model) for model in models]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise TypeError(f"plugin keys used twice: {', '.join(twice)}")
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="type")]


class PluginTable(Generic[T_co]):
    """A family's plugins by config model and by key, from its one list (read-only)."""

    def __init__(self, family: str, plugins: Iterable[Plugin[Any, T_co]]) -> None:
        self.family = family
        """What the plugins are, in messages: "source", "action"."""
        self.plugins: tuple[Plugin[Any, T_co], ...] = tuple(plugins)
        tagged_union(p.config for p in self.plugins)  # the keys are unique
        self.by_key: Mapping[str, Plugin[Any, T_co]] = MappingProxyType(
            {p.key: p for p in self.plugins}
        )
        self._by_config: Mapping[type[BaseModel], Plugin[Any, T_co]] = MappingProxyType(
            {p.config: p for p in self.plugins}
        )

    def union(self) -> Any:
        """The config union of these plugins (``tagged_union``), in list order."""
        return tagged_union(p.config for p in self.plugins)

    def build(self, config: BaseModel) -> T_co:
        """The implementation for a validated config. Raises TypeError for a config model
        that is no plugin's (a programming error: add the plugin to the list)."""
        plugin = self._by_config.get(type(config))
        if plugin is None:
            raise TypeError(f"no {self.family} plugin for {type(config).__name__}")
        return plugin.build(config)
