"""Whether a candidate replaces the deployed model, and the version it gets.

Versions: a candidate for a device is released under model name
``edgetwin-<device>`` with the device's current model version plus one in its last
dotted part, bumped past every version already used in ``<reports_dir>/<device>/``:
"1.0.0" (the shipped default) -> "1.0.1" -> "1.0.2"... ``version_key`` orders them, so
the device's anti-rollback check accepts each newer one. A candidate that is not
promoted still uses up its number (its report folder keeps it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edgetwin_contracts.manifest import version_key

MODEL_NAME_PREFIX = "edgetwin-"


class Verdict(StrEnum):
    PROMOTED = "promoted"
    NOT_PROMOTED = "not_promoted"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one device in one retrain.

    ``reason`` is a sentence; for NOT_PROMOTED it starts with "not promoted: ".
    """

    device: str
    verdict: Verdict
    reason: str
    version: str | None = None
    report_dir: Path | None = None


def model_name(device: str) -> str:
    """The manifest model name of a device's own releases (a device name is a valid one)."""
    return f"{MODEL_NAME_PREFIX}{device}"


def compare(candidate_mae: float, deployed_mae: float, margin: float) -> tuple[bool, str]:
    """Promote when ``candidate_mae <= deployed_mae * (1 - margin)``; returns (promote,
    reason). MAEs in channel units, all channels, all-horizon mean."""
    needed = deployed_mae * (1.0 - margin)
    if not math.isfinite(candidate_mae):
        return False, "not promoted: the candidate's held-out MAE is not finite"
    if candidate_mae <= needed:
        gain = 1.0 - candidate_mae / deployed_mae if deployed_mae > 0 else 0.0
        return True, (
            f"promoted: held-out MAE {candidate_mae:.6g} vs deployed {deployed_mae:.6g} "
            f"({gain:.1%} better; margin {margin:.0%})"
        )
    return False, (
        f"not promoted: held-out MAE {candidate_mae:.6g} is not below the deployed model's "
        f"{deployed_mae:.6g} by the margin of {margin:.0%} (needed <= {needed:.6g})"
    )


def next_version(current: str, used: list[str]) -> str:
    """One above the highest of ``current`` and ``used`` in its last dotted part."""
    best = max([current, *used], key=version_key)
    parts = list(version_key(best)) or [0]
    while len(parts) < 3:
        parts.append(0)
    parts[-1] += 1
    return ".".join(str(p) for p in parts)


def used_versions(device_reports: Path) -> list[str]:
    """Versions whose report folders exist under ``<reports_dir>/<device>/``."""
    if not device_reports.is_dir():
        return []
    return [p.name for p in device_reports.iterdir() if p.is_dir() and _VERSION.match(p.name)]


_VERSION = re.compile(r"^\d+(\.\d+)*$")
