"""The serial source config that reads what the simulator prints."""

from __future__ import annotations

from edge_agent.simulator.command import COMMAND_FIELD
from edge_agent.simulator.faults import CHANNELS
from edge_agent.simulator.pump import TIMESTAMP_FIELD, SimulatorSettings
from edge_agent.sources.serial import SerialSourceConfig


def serial_config_for(
    settings: SimulatorSettings, port: str, name: str = "pump0", **overrides: object
) -> SerialSourceConfig:
    """A validated ``SerialSourceConfig`` for the simulator's output on ``port`` (its link
    or pty path): the right format and CSV columns, each sensor to a channel of its own
    name (and ``load`` when it reports its load), the device timestamp when the
    simulator prints one. ``overrides`` are further
    config keys (e.g. backoff={"initial_s": 0.05, "max_s": 0.2}).

    Raises pydantic.ValidationError for bad overrides.
    """
    data: dict[str, object] = {
        "type": "serial",
        "name": name,
        "port": port,
        "format": settings.format.value,
        "fields": {
            channel: {"channel": channel}
            for channel in CHANNELS + ((COMMAND_FIELD,) if settings.report_load else ())
        },
        "csv_delimiter": settings.csv_delimiter,
    }
    if settings.format.value == "csv":
        data["csv_fields"] = settings.csv_fields()
    if settings.timestamps:
        data["timestamp_field"] = TIMESTAMP_FIELD
    data.update(overrides)
    return SerialSourceConfig.model_validate(data)
