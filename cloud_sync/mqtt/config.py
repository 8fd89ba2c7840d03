"""The [mqtt] section of the cloud's config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from edgetwin_common.config import Strict
from edgetwin_common.mqtt import BrokerConfig


class MqttSection(Strict):
    """Devices sync through an MQTT broker too (docs/mqtt.md). Off by default."""

    enabled: bool = False
    broker: BrokerConfig = BrokerConfig()
    """The broker, with the cloud's own username/password (full access to edgetwin/#)."""
    ingest_threads: Annotated[int, Field(ge=1, le=256)] = 4
    """Threads that decode, validate and store batches (SQLite uses one: one writer)."""
    desired_poll_s: Annotated[float, Field(gt=0, le=60)] = 0.02
    """How often the database is read for desired states changed by any replica (each
    change is then published, retained, on the device's desired topic)."""
    password_file: Path | None = None
    """Mosquitto password file ``cloud-sync devices add`` writes the device's entry to."""
    acl_file: Path | None = None
    """Mosquitto ACL file ``cloud-sync devices add`` writes the device's rules to."""
