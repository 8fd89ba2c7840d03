"""Who may do what: a device only its own data, the admin the fleet."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.cloud_sync.conftest import ADMIN, batch, bearer, post_batch, stored

OWN_ROUTES = [
    "/v1/devices/{name}/twin",
    "/v1/devices/{name}/summaries",
    "/v1/devices/{name}/desired",
]


@pytest.mark.parametrize("route", OWN_ROUTES)
def test_a_device_reads_only_its_own_data(
    client: httpx.Client, tokens: dict[str, str], route: str
) -> None:
    pump1 = bearer(tokens["pump-1"])
    assert client.get(route.format(name="pump-1"), headers=pump1).status_code == 200
    other = client.get(route.format(name="pump-2"), headers=pump1)
    assert other.status_code == 403
    assert "own" in other.json()["detail"]
    # Not even a hint whether a device exists.
    assert client.get(route.format(name="ghost"), headers=pump1).status_code == 403
    assert client.get(route.format(name="pump-2"), headers=ADMIN).status_code == 200
    assert client.get(route.format(name="ghost"), headers=ADMIN).status_code == 404
    assert client.get(route.format(name="pump-1")).status_code == 401
    assert client.get(route.format(name="pump-1"), headers=bearer("nope")).status_code == 401


def test_a_device_writes_only_its_own_batches(
    client: httpx.Client, engine: Engine, tokens: dict[str, str]
) -> None:
    """The device comes from the token; the body cannot name another one."""
    assert post_batch(client, tokens["pump-2"], batch(1)).status_code == 200
    twins = {
        name: client.get(f"/v1/devices/{name}/twin", headers=ADMIN).json()
        for name in ("pump-1", "pump-2")
    }
    assert twins["pump-1"]["last_sequence"] == 0 and twins["pump-2"]["last_sequence"] == 1
    own = client.get("/v1/devices/pump-2/summaries", headers=bearer(tokens["pump-2"]))
    assert len(own.json()) == 2
    assert stored(engine)["batches"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/devices", None),
        ("POST", "/v1/devices", {"name": "pump-9"}),
        ("PATCH", "/v1/devices/pump-1/desired", {"sync_interval_s": 10}),
    ],
)
def test_fleet_operations_need_the_admin_token(
    client: httpx.Client, tokens: dict[str, str], method: str, path: str, body: object
) -> None:
    own_device = {**bearer(tokens["pump-1"]), "If-Match": '"0"'}
    assert client.request(method, path, json=body, headers=own_device).status_code == 403
    assert client.request(method, path, json=body).status_code == 401
    admin = client.request(method, path, json=body, headers={**ADMIN, "If-Match": '"0"'})
    assert admin.status_code in {200, 201}, admin.text


def test_admin_has_no_twin_of_its_own(client: httpx.Client, tokens: dict[str, str]) -> None:
    assert client.get("/v1/twin", headers=ADMIN).status_code == 403
    assert client.get("/v1/twin").status_code == 401


def test_admin_registers_devices(client: httpx.Client, tokens: dict[str, str]) -> None:
    made = client.post("/v1/devices", json={"name": "press-7"}, headers=ADMIN)
    assert made.status_code == 201
    token = made.json()["token"]
    assert len(token) >= 40
    assert client.get("/v1/twin", headers=bearer(token)).json()["device"] == "press-7"
    again = client.post("/v1/devices", json={"name": "press-7"}, headers=ADMIN)
    assert again.status_code == 409
    for bad in ("", "-x", "a b", "x" * 65, "../etc"):
        assert client.post("/v1/devices", json={"name": bad}, headers=ADMIN).status_code == 422
