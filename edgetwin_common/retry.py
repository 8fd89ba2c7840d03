"""One retry policy: exponential backoff, capped, with jitter, counting the attempts.

Everything in edgetwin that waits before trying again uses it: sources reopening a lost
device or connection, the sync worker, OTA downloads and the webhook action.
``BackoffConfig`` is its one config model (``backoff = { initial_s = .., max_s = .. }``
in every section that retries); the ``Jitter`` is chosen by the code that retries, for
its own reason (a device has one reader of its port, but a fleet shares one cloud).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from edgetwin_common.config import Strict, deprecation, note_deprecated

__all__ = ["Backoff", "BackoffConfig", "Jitter", "complete_backoff_table"]

_MAX_DOUBLINGS = 64
"""Doubling stops there: past any sensible max_s, and far from a float overflow."""
_LONGEST_WAIT_S = threading.TIMEOUT_MAX
"""A thread cannot wait longer in one call (OverflowError): a larger max_s waits this."""


class Jitter(StrEnum):
    """How the nominal delay is randomised."""

    NONE = "none"
    """Exactly the nominal delay: one reader per device, no crowd to spread."""
    EQUAL = "equal"
    """Uniform between half the nominal delay and all of it ("equal jitter"): devices that
    lost the cloud together do not come back in lockstep, none waits under half."""
    ADDED = "added"
    """The nominal delay plus up to one ``initial_s``, capped at ``max_s`` (tenacity's
    ``wait_exponential_jitter``)."""


class BackoffConfig(Strict):
    """Waits between attempts: initial_s after the first failure, doubling after each
    failure in a row up to max_s, back to initial_s after a success."""

    initial_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Wait after the first failure (s)."""
    max_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Longest wait (s)."""

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.initial_s > self.max_s:
            raise ValueError(f"initial_s must be <= max_s ({self.max_s})")
        return self


class Backoff:
    """The waits (s) of one ``BackoffConfig``: after the n-th failure in a row,
    ``min(max_s, initial_s * 2^(n-1))``, randomised as ``jitter`` says.

    ``delay(n)`` is that wait; ``next_delay()`` counts one more failure (``attempts``)
    and returns its wait; ``reset()`` forgets the failures after a success.
    rng: the jitter's random source (tests pass a seeded one).
    """

    __slots__ = ("_rng", "attempts", "config", "jitter")

    def __init__(
        self,
        config: BackoffConfig,
        jitter: Jitter = Jitter.NONE,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.jitter = jitter
        self.attempts = 0
        """Failures in a row so far (the exponent of the next wait)."""
        self._rng = rng or random.Random()

    def nominal(self, failures: int) -> float:
        """The wait before jitter after ``failures`` failures in a row (0 counts as 1)."""
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.config.max_s, self.config.initial_s * 2.0**doublings, _LONGEST_WAIT_S)

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row, jittered; never above max_s."""
        nominal = self.nominal(failures)
        if self.jitter is Jitter.EQUAL:
            return nominal * self._rng.uniform(0.5, 1.0)
        if self.jitter is Jitter.ADDED:
            added = nominal + self._rng.uniform(0.0, self.config.initial_s)
            return min(added, self.config.max_s)
        return nominal

    def next_delay(self) -> float:
        """Count one more failure and return the wait before the next attempt."""
        self.attempts += 1
        return self.delay(self.attempts)

    def reset(self) -> None:
        """A success: the next failure waits initial_s again."""
        self.attempts = 0

    def attempts_until(self, stop: threading.Event) -> Iterator[int]:
        """For a supervised loop in a thread: yields before each attempt (numbered from
        1), having waited ``next_delay()`` before every attempt but the first (a device
        just lost is usually still gone, and a failing open must not spin); ends when
        ``stop`` is set, also in the middle of a wait. Call ``reset()`` on success."""
        number = 0
        while not stop.is_set():
            if number and stop.wait(self.next_delay()):
                return
            number += 1
            yield number


def complete_backoff_table(
    model: type[BaseModel],
    data: Any,
    info: ValidationInfo,
    renamed: Mapping[str, tuple[str, ...]],
    section: str,
) -> Any:
    """For a config's ``model_validator(mode="before")``: ``data`` with its ``backoff``
    table complete.

    Keys of an old flat spelling (``renamed``: old key -> the backoff keys it sets) move
    into the table, each with a deprecation note naming its new key (``note_deprecated``:
    logged once when the file loads); keys the table lacks come from the owner's default
    (``model``'s ``backoff`` field), so ``backoff = { max_s = 600 }`` keeps the section's
    own initial_s. ``section`` names the place in notes: "sync", "sources"...
    Raises ValueError when an old key and its new key are both set.
    """
    if not isinstance(data, dict):
        return data
    table = data.get("backoff", {})
    old = [key for key in renamed if key in data]
    if not isinstance(table, dict) or (not old and "backoff" not in data):
        return data  # nothing to complete (or not a table: the model says what is wrong)
    data, table = dict(data), dict(table)
    where = f'{section} "{data["name"]}"' if isinstance(data.get("name"), str) else section
    for key in old:
        value = data.pop(key)
        targets = renamed[key]
        for target in targets:
            if target in table:
                raise ValueError(f"{key} is the old spelling of backoff.{target}: keep one")
            table[target] = value
        new = " and ".join(f"backoff.{target}" for target in targets)
        note_deprecated(info, deprecation(where, key, new))
    default = model.model_fields["backoff"].default
    if isinstance(default, BackoffConfig):
        for name, value in default.model_dump().items():
            table.setdefault(name, value)
    data["backoff"] = table
    return data
