"""The base of every config model: strict (unknown keys are errors) and immutable; and
the types several sections share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ChannelName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
"""A channel's name: letters, digits, ``_``, ``.`` and ``-`` (it appears in metric labels,
URLs and the twin)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
