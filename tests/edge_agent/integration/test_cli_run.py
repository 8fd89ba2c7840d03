"""`edge-agent run --config X` as a real subprocess: it serves, stores, and stops cleanly
on SIGTERM; a bad config or a missing bundle stops it before anything starts."""

from __future__ import annotations

import signal
from pathlib import Path

from edgetwin_common.testing import free_port, wait_until
from tests.edge_agent.agent_harness import replay_temp_toml
from tests.edge_agent.integration.helpers import (
    GUARD_S,
    agent_process,
    agent_toml,
    inspect_store,
    run_cli,
    write_series,
)

ROWS = 400
BAD_ROWS = {50: f"{1_700_000_050},not-a-number", 51: f"{1_700_000_051},"}
HIGH = range(300, 320)


def replay_body(csv: Path) -> str:
    return replay_temp_toml(csv, speed=1000)


def test_run_serves_stores_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    csv = tmp_path / "history.csv"
    write_series(csv, ROWS, high=HIGH, bad=BAD_ROWS)
    data_dir = tmp_path / "data"
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml(data_dir, replay_body(csv), port=port))
    good = ROWS - len(BAD_ROWS)

    with agent_process(config, port, tmp_path / "agent.log") as agent:
        agent.wait_ready()

        def all_replayed() -> bool:
            state: str = agent.status()["sources"][0]["state"]
            return state == "finished"

        wait_until(all_replayed, "the replay to finish", timeout_s=GUARD_S)
        status = agent.status()
        (source,) = status["sources"]
        assert source["counters"]["rows_ok"] == good
        assert source["counters"]["rows_not_numeric"] == 1
        assert source["counters"]["rows_missing_value"] == 1
        (channel,) = status["channels"]
        assert channel["name"] == "temp" and channel["readings"] == good
        assert channel["processed"] == good and channel["forecast"] is not None
        assert status["alarms"] == []  # the high stretch came and went
        (alarm,) = agent.get("/alarms")
        assert alarm["rule"] == "temp-high" and alarm["state"] == "cleared"

        code = agent.signal(signal.SIGTERM)
        output = agent.output()
        assert code == 0, output
    assert "agent stopped" in output

    # The shutdown flushed everything: every reading and the alarm, in a sound file.
    store = inspect_store(data_dir / "edge-agent.db")
    assert store.integrity == "ok"
    assert store.readings == good
    assert store.alarm_ids == {alarm["id"]}
    assert store.alarm_events == 2  # raised, cleared


def test_config_with_errors_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    csv = tmp_path / "history.csv"
    write_series(csv, 10)
    data_dir = tmp_path / "data"
    body = replay_body(csv).replace("speed = 1000", "speed = -1\nsped = 2")
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml(data_dir, body, port=free_port()))

    done = run_cli(["run", "--config", str(config)], tmp_path)

    assert done.returncode == 2, done.stderr
    assert "sources.0.speed" in done.stderr and "sources.0.sped" in done.stderr
    assert not data_dir.exists()  # no store, not even its folder
    assert "agent started" not in done.stdout + done.stderr


def test_missing_bundle_exits_nonzero_naming_it(tmp_path: Path) -> None:
    csv = tmp_path / "history.csv"
    write_series(csv, 10)
    data_dir = tmp_path / "data"
    bundle = tmp_path / "models" / "pump-7-v3"
    key = tmp_path / "release.pub"
    key.write_text(_shipped_public_key())
    model = f'[model]\nbundle = "{bundle}"\npublic_key = "{key}"\n'
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml(data_dir, model + replay_body(csv), port=free_port()))

    done = run_cli(["run", "--config", str(config)], tmp_path)

    assert done.returncode != 0
    assert str(bundle) in done.stderr
    assert not (data_dir / "edge-agent.db").exists()


def _shipped_public_key() -> str:
    from edge_agent.model.shipped import DEFAULT_PUBLIC_KEY

    return DEFAULT_PUBLIC_KEY.read_text()
