"""SerialSourceConfig checks, and the TOML examples in docs/sources.md stay valid."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.sources.registry import SourceConfig
from edge_agent.sources.serial import LineFormat, SerialSourceConfig
from edgetwin_common.retry import BackoffConfig

DOCS = Path(__file__).resolve().parents[3] / "docs"


def base(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "serial",
        "name": "pump",
        "port": "/dev/serial/by-id/usb-Arduino_Uno_123-if00",
        "format": "csv",
        "csv_fields": ["temp", "vib"],
        "fields": {"temp": {"channel": "bearing_temp"}},
    }
    data.update(fields)
    return data


def test_defaults() -> None:
    config = SerialSourceConfig.model_validate(base())
    assert config.format is LineFormat.CSV
    assert config.backoff == BackoffConfig(initial_s=0.5, max_s=30.0)
    assert config.timestamp_field is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"csv_fields": []}, "needs csv_fields"),
        ({"csv_fields": ["temp", "temp"]}, "names used twice: temp"),
        ({"fields": {"rpm": {"channel": "rpm"}}}, "fields not in csv_fields: rpm"),
        ({"timestamp_field": "ts"}, "timestamp_field 'ts' not in csv_fields"),
        ({"backoff": {"initial_s": 5, "max_s": 1}}, "initial_s must be <= max_s"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "initial_s must be <= max_s"),
        ({"encoding": "klingon"}, "unknown encoding"),
        ({"fields": {}}, "at least 1 item"),
        ({"max_line_bytes": 8}, "greater than or equal to 16"),
        ({"fields": {"temp": {"channel": "bad channel"}}}, "should match pattern"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_problems_are_rejected(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SerialSourceConfig.model_validate(base(**change))


def test_kv_and_json_need_no_columns() -> None:
    for fmt in ("kv", "jsonl"):
        config = SerialSourceConfig.model_validate(base(format=fmt, csv_fields=[]))
        assert config.format.value == fmt


@pytest.mark.parametrize("doc", ["sources.md", "simulator.md"])
def test_every_toml_example_in_the_docs_is_a_valid_source(doc: str) -> None:
    text = (DOCS / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert blocks
    sources: TypeAdapter[list[SourceConfig]] = TypeAdapter(list[SourceConfig])
    for block in blocks:
        sources.validate_python(tomllib.loads(block)["sources"])
