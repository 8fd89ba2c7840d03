"""The anomaly score methods: the one union (``ScoreConfig``, discriminated on
``method``) from which the list of methods derives.

Adding a method: a module in this folder with its config model (deriving from
``ScoreMethodConfig``, ``method: Literal["..."]``, a ``build()`` returning its scorer),
then one more member of the union below (docs/architecture.md, "Adding a score method").
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from edge_agent.anomaly.base import ScoreMethodConfig
from edge_agent.anomaly.ensemble import EnsembleScoreConfig
from edge_agent.anomaly.likelihood import LikelihoodScoreConfig
from edge_agent.anomaly.residual import ResidualScoreConfig

DEFAULT_METHOD = "residual"
"""The method of a [score] table that names none."""


def _one_method(data: Any) -> Any:
    """Default the method, and name each key that belongs to another method only (a
    likelihood setting under method = "residual" would otherwise be a silent no-op or a
    bare "extra input")."""
    if not isinstance(data, dict):
        return data
    data = {"method": DEFAULT_METHOD, **data}
    method = data["method"]
    keys = {method_key(m): set(m.model_fields) for m in SCORE_METHODS}
    if method not in keys:
        return data  # the union names the unknown method
    errors = []
    for key in data:
        owners = [name for name, fields in keys.items() if key in fields]
        if owners and key not in keys[method]:
            error = PydanticCustomError(
                "score_setting_of_other_method",
                "a setting of method {owners}, not of {method}",
                {"owners": " or ".join(map(repr, owners)), "method": repr(method)},
            )
            errors.append(InitErrorDetails(type=error, loc=(key,), input=data[key]))
    if errors:
        raise ValidationError.from_exception_data("ScoreConfig", errors)
    return data


ScoreConfig = Annotated[
    ResidualScoreConfig | LikelihoodScoreConfig | EnsembleScoreConfig,
    Field(discriminator="method"),
    BeforeValidator(_one_method),
]
"""A channel's [score] table: the registry of score methods."""

SCORE_METHODS: tuple[type[ScoreMethodConfig], ...] = get_args(get_args(ScoreConfig)[0])
"""Every method's config model, in the union's order."""


def method_key(model: type[ScoreMethodConfig]) -> str:
    """The ``method`` value that selects ``model``, e.g. "residual"."""
    key: str = get_args(model.model_fields["method"].annotation)[0]
    return key
