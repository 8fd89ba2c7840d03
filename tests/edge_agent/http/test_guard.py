"""The agent's API against cross-site requests and DNS rebinding, through a real agent
(real uvicorn on 127.0.0.1, real SQLite, a replayed CSV that raises an alarm): the
requests a hostile page can make the operator's browser send are refused, the status
page's own acknowledge (same-origin JSON) and a token holder's pass, and non-finite
numbers in the ack body are a 422 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.daemon.agent import Agent
from edgetwin_common.testing import wait_until
from tests.edge_agent.agent_harness import config_for, replay_temp_toml, running_agent

ROWS = 120
TOKEN = "0123456789abcdef-token"


@contextmanager
def agent_with(tmp_path: Path, http: str) -> Iterator[Agent]:
    csv = tmp_path / "pump.csv"
    lines = ["timestamp,temp"]
    lines += [f"{1_700_000_000 + i},{90.0 if i >= 100 else 40.0:.1f}" for i in range(ROWS)]
    csv.write_text("\n".join(lines) + "\n")
    loaded = config_for(tmp_path, replay_temp_toml(csv) + f"\n[http]\nport = 0\n{http}\n")
    with running_agent(loaded) as agent:
        wait_until(
            lambda: sum(c.processed for c in agent.pipeline.channels.values()) >= ROWS,
            "all rows processed",
        )
        yield agent


@pytest.fixture
def open_agent(tmp_path: Path) -> Iterator[Agent]:
    """No token (the loopback default); one extra name."""
    with agent_with(tmp_path, 'allowed_hosts = ["pump-7.local"]') as agent:
        yield agent


def alarm_id(client: httpx.Client) -> int:
    alarm = next(a for a in client.get("/alarms").json() if a["rule"] == "temp-high")
    return int(alarm["id"])


def state(client: httpx.Client, alarm: int) -> str:
    return str(next(a for a in client.get("/alarms").json() if a["id"] == alarm)["state"])


def test_a_foreign_host_name_is_refused_ip_literals_and_configured_names_pass(
    open_agent: Agent,
) -> None:
    port = httpx.URL(open_agent.http_url).port
    with httpx.Client(base_url=open_agent.http_url) as client:
        for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", ""):
            answer = client.get("/status", headers={"Host": host})
            assert answer.status_code == 400, host
            assert "allowed_hosts" in answer.json()["detail"]
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            "LOCALHOST.",
            f"[::1]:{port}",
            "pump-7.local",
            "192.168.1.50:8080",  # the board's LAN address: a literal, never rebound
        ):
            assert client.get("/status", headers={"Host": host}).status_code == 200, host


CROSS_SITE: list[tuple[str, dict[str, str], bytes, int]] = [
    ("rebinding", {"Host": "evil.example", "Content-Type": "application/json"}, b"{}", 400),
    ("bodyless", {}, b"", 415),
    ("html form", {"Content-Type": "application/x-www-form-urlencoded"}, b"", 415),
    ("text/plain fetch", {"Content-Type": "text/plain"}, b"{}", 415),
    (
        "foreign origin",
        {"Origin": "http://evil.example", "Content-Type": "application/json"},
        b"{}",
        403,
    ),
    ("opaque origin", {"Origin": "null", "Content-Type": "application/json"}, b"{}", 403),
]


def test_cross_site_acknowledges_are_refused_and_the_alarm_stays(open_agent: Agent) -> None:
    with httpx.Client(base_url=open_agent.http_url) as client:
        alarm = alarm_id(client)
        for name, headers, body, status in CROSS_SITE:
            answer = client.post(f"/alarms/{alarm}/ack", headers=headers, content=body)
            assert answer.status_code == status, (name, answer.text)
        assert state(client, alarm) == "active_unacknowledged"
        # What the status page sends: same origin, JSON.
        origin = open_agent.http_url
        page = client.post(
            f"/alarms/{alarm}/ack",
            headers={"Origin": origin, "Content-Type": "application/json"},
            content=b"{}",
        )
        assert page.status_code == 200, page.text
        assert state(client, alarm) == "active_acknowledged"


NOT_FINITE: list[tuple[bytes, list[Any]]] = [
    (b'{"by": NaN}', ["body", "by"]),
    (b'{"note": Infinity}', ["body", "note"]),
    (b'{"by": "x", "note": -Infinity}', ["body", "note"]),
    (b'{"by": 1e999}', ["body", "by"]),
    (b'{"extra": [1, 2, NaN]}', ["body", "extra", 2]),
]


@pytest.mark.parametrize(("body", "loc"), NOT_FINITE, ids=[b.decode() for b, _ in NOT_FINITE])
def test_non_finite_numbers_in_the_ack_body_are_a_422_naming_the_field(
    open_agent: Agent, body: bytes, loc: list[Any]
) -> None:
    with httpx.Client(base_url=open_agent.http_url) as client:
        alarm = alarm_id(client)
        answer = client.post(
            f"/alarms/{alarm}/ack", headers={"Content-Type": "application/json"}, content=body
        )
        assert answer.status_code == 422, answer.text
        (problem,) = answer.json()["detail"]
        assert problem["loc"] == loc
        assert state(client, alarm) == "active_unacknowledged"


def test_other_bad_ack_bodies_are_4xx_never_500(open_agent: Agent) -> None:
    json_headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=open_agent.http_url) as client:
        alarm = alarm_id(client)
        url = f"/alarms/{alarm}/ack"
        for body, status in (
            (b"[1, 2]", 422),
            (b'"text"', 422),
            (b"{not json", 422),
            (b'{"by": 7}', 422),  # strict: a number is not a name
            (b'{"unknown": "x"}', 422),
            (b'{"a": ' * 2000 + b"1" + b"}" * 2000, 422),
            (b"[" * 5_000 + b"]" * 5_000, 422),
            (b"9" * 5000, 422),
            (b'{"by": "' + b"x" * 20_000 + b'"}', 413),
        ):
            answer = client.post(url, headers=json_headers, content=body)
            assert answer.status_code == status, (body[:20], answer.text[:200])
        assert client.get("/readings?channel=temp&since=nan").status_code == 422
        assert client.get("/readings?channel=temp&since=inf").status_code == 422
        assert state(client, alarm) == "active_unacknowledged"
        done = client.post(url, headers=json_headers, json={"by": "op-7", "note": "checked"})
        assert done.status_code == 200 and done.json()["acked_by"] == "op-7"


def test_with_a_token_only_the_token_changes_state(tmp_path: Path) -> None:
    with (
        agent_with(tmp_path, f'token = "{TOKEN}"') as agent,
        httpx.Client(base_url=agent.http_url) as client,
    ):
        alarm = alarm_id(client)
        url = f"/alarms/{alarm}/ack"
        same_origin = {"Origin": agent.http_url, "Content-Type": "application/json"}
        refused = client.post(url, headers=same_origin, content=b"{}")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = client.post(url, headers={"Authorization": "Bearer " + "x" * 22})
        assert wrong.status_code == 401
        assert state(client, alarm) == "active_unacknowledged"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # A token holder is no browser: no Host, type or origin rules apply.
        done = client.post(url, headers={**auth, "Host": "anything.example"})
        assert done.status_code == 200, done.text
        assert state(client, alarm) == "active_acknowledged"
