"""The plugin registries' contract, for every plugin of every family (sources, actions):
one module holds its key, config and implementation; its config round-trips; it has a
TOML example in the docs that validates, and a section in the generated configuration
reference; it builds without touching hardware; and it has tests of its own."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from edge_agent.actions.registry import ACTIONS, ActionConfig
from edge_agent.sources.base import SourceState
from edge_agent.sources.registry import SOURCES, SourceConfig
from edgetwin_common.plugins import Plugin, PluginTable
from tests.conftest import REPO

FAMILIES: dict[str, tuple[PluginTable[Any], Any]] = {
    "sources": (SOURCES, SourceConfig),
    "actions": (ACTIONS, ActionConfig),
}
"""Family (its ``[[table]]`` in the config and its folder) -> registry and config union."""

CASES = [
    pytest.param(family, plugin, id=f"{family}-{plugin.key}")
    for family, (table, _) in FAMILIES.items()
    for plugin in table.plugins
]


def documented_tables(family: str) -> list[dict[str, Any]]:
    """Every ``[[family]]`` table of the TOML examples in docs/ and examples/."""
    texts = [
        path.read_text(encoding="utf-8") for path in sorted((REPO / "examples").glob("*.toml"))
    ]
    for doc in sorted((REPO / "docs").glob("*.md")):
        texts += re.findall(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    return [table for text in texts for table in tomllib.loads(text).get(family, [])]


def module_of(family: str, model_or_class: type) -> str:
    """The plugin module (or package) below edge_agent/<family>/ that defines it."""
    prefix = f"edge_agent.{family}."
    assert model_or_class.__module__.startswith(prefix), model_or_class.__module__
    return model_or_class.__module__.removeprefix(prefix).split(".")[0]


def test_every_family_lists_plugins_with_unique_keys() -> None:
    for table, _ in FAMILIES.values():
        keys = [p.key for p in table.plugins]
        assert keys and len(keys) == len(set(keys)) == len(table.by_key)


@pytest.mark.parametrize(("family", "plugin"), CASES)
def test_key_config_and_implementation_live_in_one_module(
    family: str, plugin: Plugin[Any, Any]
) -> None:
    assert module_of(family, plugin.config) == module_of(family, plugin.build)  # type: ignore[arg-type]
    assert plugin.config.model_fields["type"].is_required()


@pytest.mark.parametrize(("family", "plugin"), CASES)
def test_documented_examples_validate_and_round_trip(family: str, plugin: Plugin[Any, Any]) -> None:
    _, union = FAMILIES[family]
    examples = [t for t in documented_tables(family) if t.get("type") == plugin.key]
    assert examples, f'no TOML example of [[{family}]] type = "{plugin.key}" in docs/ or examples/'
    adapter: TypeAdapter[Any] = TypeAdapter(union)
    for example in examples:
        config = adapter.validate_python(example)
        assert type(config) is plugin.config
        assert plugin.config.model_validate(config.model_dump()) == config
        assert adapter.validate_json(adapter.dump_json(config)) == config


@pytest.mark.parametrize(("family", "plugin"), CASES)
def test_it_has_a_section_in_the_configuration_reference(
    family: str, plugin: Plugin[Any, Any]
) -> None:
    reference = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert f'## `[[{family}]]` with type = "{plugin.key}"' in reference


@pytest.mark.parametrize(("family", "plugin"), CASES)
def test_it_builds_from_its_example_without_touching_anything(
    family: str, plugin: Plugin[Any, Any]
) -> None:
    table, union = FAMILIES[family]
    example = next(t for t in documented_tables(family) if t.get("type") == plugin.key)
    config: BaseModel = TypeAdapter(union).validate_python(example)
    built = table.build(config)
    assert built.name == config.name  # type: ignore[attr-defined]
    if family == "sources":
        assert built.health.state is SourceState.STARTING


@pytest.mark.parametrize(("family", "plugin"), CASES)
def test_it_has_a_test_module(family: str, plugin: Plugin[Any, Any]) -> None:
    name = module_of(family, plugin.config)
    folder = REPO / "tests" / "edge_agent" / family
    found = [*folder.glob(f"test_{name}*.py"), *(folder / name).glob("test_*.py")]
    assert found, f"no tests/edge_agent/{family}/test_{name}*.py (or {name}/test_*.py)"


def test_an_unregistered_config_is_a_programming_error() -> None:
    class Stray(BaseModel):
        type: str = "stray"

    for table, _ in FAMILIES.values():
        with pytest.raises(TypeError, match=f"no {table.family} plugin for Stray"):
            table.build(Stray())
