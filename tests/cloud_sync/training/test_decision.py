"""The promotion rule and the version scheme."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_sync.training.decision import compare, next_version, used_versions
from edgetwin_contracts.manifest import version_key


@pytest.mark.parametrize(
    ("candidate", "deployed", "margin", "promote"),
    [
        (0.90, 1.0, 0.05, True),
        (0.95, 1.0, 0.05, True),  # exactly at the margin
        (0.96, 1.0, 0.05, False),  # better, but not by the margin
        (1.10, 1.0, 0.05, False),
        (0.50, 1.0, 0.0, True),
        (float("nan"), 1.0, 0.05, False),
    ],
)
def test_margin(candidate: float, deployed: float, margin: float, promote: bool) -> None:
    ok, reason = compare(candidate, deployed, margin)
    assert ok is promote
    assert reason.startswith("promoted: " if promote else "not promoted: ")


def test_versions_order_past_the_deployed_and_every_used_one(tmp_path: Path) -> None:
    assert next_version("1.0.0", []) == "1.0.1"
    assert next_version("2", []) == "2.0.1"
    for v in ("1.0.1", "1.0.7", "bundle"):
        (tmp_path / v).mkdir()
    used = used_versions(tmp_path)
    assert sorted(used) == ["1.0.1", "1.0.7"]
    nxt = next_version("1.0.0", used)
    assert nxt == "1.0.8"
    assert version_key(nxt) > version_key("1.0.7") > version_key("1.0.0")
    assert next_version("1.2.0", used) == "1.2.1"
