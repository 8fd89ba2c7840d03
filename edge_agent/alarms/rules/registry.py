"""The alarm rule types: the one union (``AlarmRule``, discriminated on ``type``) from
which the list of types and their keys derive, and the checks of a list of rules.

Adding a rule type: a module in this folder with its config model (deriving from
``RuleConfig`` or ``LevelRule``, ``type: Literal["..."]``) and its ``Check``, then one
more member of the union below (docs/architecture.md, "An alarm rule, step by step").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Annotated, Any, get_args

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails

from edge_agent.alarms.rules.base import RuleConfig
from edge_agent.alarms.rules.cross import CrossRule
from edge_agent.alarms.rules.forecast import ForecastRule
from edge_agent.alarms.rules.health import HealthRule
from edge_agent.alarms.rules.rate import RateRule
from edge_agent.alarms.rules.score import ScoreRule
from edge_agent.alarms.rules.value import ValueRule
from edgetwin_common.config import renamed_key
from edgetwin_common.errors import ConfigProblem


def _accept_kind(data: Any, info: ValidationInfo) -> Any:
    """The old spelling: ``kind`` for ``type``, named in its error when its value is none
    of the types (as pydantic names ``type``)."""
    if isinstance(data, dict) and "kind" in data and "type" not in data:
        tag = data["kind"]
        if tag not in RULE_KEYS:
            context = {
                "discriminator": "'kind'",
                "tag": str(tag),
                "expected_tags": ", ".join(map(repr, RULE_KEYS)),
            }
            detail = InitErrorDetails(type="union_tag_invalid", loc=(), input=data, ctx=context)
            raise ValidationError.from_exception_data("AlarmRule", [detail])
    where = f"[[alarms]] {data.get('name')!r}" if isinstance(data, dict) else "[[alarms]]"
    return renamed_key(data, "kind", "type", where, info)


AlarmRule = Annotated[
    ValueRule | RateRule | ScoreRule | ForecastRule | HealthRule | CrossRule,
    Field(discriminator="type"),
    BeforeValidator(_accept_kind),
]
"""One [[alarms]] table: the registry of rule types."""

RULE_TYPES: tuple[type[RuleConfig], ...] = get_args(get_args(AlarmRule)[0])
"""Every rule type's config model, in the union's order."""

RULE_KEYS: tuple[str, ...] = tuple(
    key for model in RULE_TYPES for key in get_args(model.model_fields["type"].annotation)
)
"""Every value ``type`` may take, e.g. "value_above"."""


def rule_list_problems(
    rules: Sequence[RuleConfig], actions: Collection[str]
) -> list[ConfigProblem]:
    """The checks of [[alarms]] as a whole: a name used twice, an action that is not in
    ``actions`` (the known action names). Paths are the config's ("alarms.1.name")."""
    problems: list[ConfigProblem] = []
    seen: set[str] = set()
    known = ", ".join(sorted(actions))
    for i, rule in enumerate(rules):
        if rule.name in seen:
            problems.append(ConfigProblem(f"alarms.{i}.name", None, f"{rule.name!r} is used twice"))
        seen.add(rule.name)
        for name in rule.actions:
            if name not in actions:
                message = f"unknown action {name!r} (known: {known})"
                problems.append(ConfigProblem(f"alarms.{i}.actions", None, message))
    return problems
