"""[sync] transport = "mqtt": what the config takes and refuses, and the examples in
docs/mqtt.md (device and cloud) validate."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from pydantic import ValidationError

from cloud_sync.mqtt.config import MqttSection
from edge_agent.sync.config import SyncConfig
from tests.conftest import REPO


def doc_tables() -> list[dict[str, Any]]:
    text = (REPO / "docs" / "mqtt.md").read_text(encoding="utf-8")
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", text, re.S)]


def test_the_documented_examples_validate() -> None:
    tables = doc_tables()
    syncs = [SyncConfig.model_validate(t["sync"]) for t in tables if "sync" in t]
    clouds = [MqttSection.model_validate(t["mqtt"]) for t in tables if "mqtt" in t]
    assert [s.transport for s in syncs] == ["mqtt"]
    assert syncs[0].mqtt is not None and syncs[0].mqtt.device_name == "pump-7"
    assert syncs[0].mqtt.broker.uses_tls
    assert clouds and clouds[0].enabled


def test_the_device_name_defaults_to_the_broker_username() -> None:
    config = SyncConfig.model_validate(
        {"enabled": True, "transport": "mqtt", "mqtt": {"broker": {"username": "pump-9"}}}
    )
    assert config.mqtt is not None and config.mqtt.device_name == "pump-9"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"enabled": True, "transport": "mqtt"}, '[sync.mqtt] is required with transport = "mqtt"'),
        (
            {"enabled": True, "transport": "mqtt", "mqtt": {"broker": {}}},
            "device (or broker.username) is required",
        ),
        ({"enabled": True, "transport": "http"}, "url is required when sync is enabled"),
        ({"enabled": True, "transport": "carrier-pigeon"}, "Input should be 'http' or 'mqtt'"),
        (
            {"enabled": True, "transport": "mqtt", "mqtt": {"device": "a b"}},
            "String should match pattern",
        ),
    ],
)
def test_incomplete_or_wrong_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        SyncConfig.model_validate(settings)
