"""The root of every edgetwin error, and the errors of the shared modules.

Each package (``edge_agent``, ``cloud_sync``, ``model_export``, ``edgetwin_contracts``)
has one root class deriving from ``EdgetwinError``, so a caller can catch everything a
package raises with one ``except``; classes are named for what the caller should do.
"""

from __future__ import annotations

from dataclasses import dataclass


class EdgetwinError(Exception):
    """The root of every error edgetwin raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config: where (dotted key path), the value found, and why."""

    path: str
    value: object
    message: str

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{self.path}: {self.message}{shown}"


class ConfigInvalid(EdgetwinError):
    """The config has problems; nothing is started. Fix the file (exit code 2)."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")
