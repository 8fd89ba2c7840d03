"""Twin releases over the air, end to end: a real `cloud-sync serve` (SQLite) holding a
bundle store and the fleet's release key (`cloud-sync releases keygen`), a real
`edge-agent run` with [sync], [ota] and [twin] reading the real pump simulator
(`edge-agent simulate --timestamps --report-load`) over a pty, and twin bundles published
with `cloud-sync releases publish --sign` to the device.

A good twin travels the whole chain (desired.twin in a batch ack, download with the
device token, archive check, signature, self-test child, swap, live guard over
[twin] guard_periods, commit) and the cloud completes the release; the agent still runs
it after a restart. A twin trained on other physics is swapped in, rolled back by the
guard, marked bad, and the rollout gives the device its previous twin back. A twin whose
stored archive was tampered with after publishing is refused on its sha256.

Time: the simulator runs 60 device seconds per second from now (--speed 60, --epoch
now), so a 1-minute twin period completes every wall second; the agent judges the
twin's periods on the readings' own time (DeviceTime), so the guard's periods come as
fast. The cloud takes device timestamps up to a day ahead of its clock. Timeouts are
guards, never assertions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.simulator.command import COMMAND_FIELD
from edge_agent.simulator.faults import CHANNELS
from edge_agent.simulator.pump import TIMESTAMP_FIELD
from edge_agent.twin.ota.manager import REJECTED_ALARM, ROLLBACK_ALARM
from edge_agent.twin.shipped import DEFAULT_TWIN_BUNDLE
from edgetwin_common.testing import free_port, wait_until
from edgetwin_contracts.manifest import MANIFEST_FILE
from tests.e2e.helpers import (
    ADMIN,
    GUARD_S,
    CloudServer,
    cloud_cli,
    register_device,
    write_cloud_toml,
)
from tests.edge_agent.integration.helpers import AgentProcess, agent_process, cli
from tests.edge_agent.twin.ota.conftest import WORSE_VERSION, build_worse_twin

pytestmark = pytest.mark.slow

DEVICE = "pump-twin-ota"
SHIPPED = json.loads((DEFAULT_TWIN_BUNDLE / MANIFEST_FILE).read_bytes())["model"]["version"]
GUARD_PERIODS = 3
SPEED = 60.0
"""Device seconds per wall second: one 1-minute twin period a second."""


def releases_cli(config: Path, *args: str) -> str:
    """``cloud-sync releases ARGS... --config CONFIG``: its stdout (exit 0 asserted)."""
    done = subprocess.run(
        cloud_cli("releases", *args, "--config", str(config)),
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )
    assert done.returncode == 0, f"releases {args}: {done.returncode}\n{done.stderr}"
    return done.stdout


def agent_config(tmp: Path, link: Path, port: int, cloud_url: str, token: str, key: Path) -> str:
    """The simulator's columns on a serial source (examples/twin.toml, with the device
    timestamp), [sync] to the cloud, [ota] with the fleet key, [twin] with a short guard."""
    fields = [TIMESTAMP_FIELD, *CHANNELS, COMMAND_FIELD]
    mapped = "".join(f'[sources.fields.{c}]\nchannel = "{c}"\n' for c in [*CHANNELS, COMMAND_FIELD])
    return f"""
[agent]
name = "e2e-twin"
data_dir = "{tmp / "data"}"
log_format = "text"

[[sources]]
type = "serial"
name = "pump0"
port = "{link}"
format = "csv"
csv_fields = {json.dumps(fields)}
timestamp_field = "{TIMESTAMP_FIELD}"
backoff = {{ initial_s = 0.2, max_s = 1.0 }}

{mapped}
[store]
flush_interval_s = 0.2

[sync]
enabled = true
url = "{cloud_url}"
token = "{token}"
interval_s = 1.0
timeout_s = 5
backoff = {{ initial_s = 0.2, max_s = 1 }}

[ota]
release_public_key = "{key}"
backoff = {{ initial_s = 0.2, max_s = 0.2 }}
download_attempts = 3

[twin]
guard_periods = {GUARD_PERIODS}
guard_steps = 3

[http]
host = "127.0.0.1"
port = {port}
"""


@dataclass
class TwinOta:
    """One cloud (SQLite, bundle store, release key pair), one device registered, the
    pump simulator on a pty link."""

    tmp: Path
    cloud_toml: Path
    cloud: CloudServer
    token: str
    public_key: Path
    link: Path
    starts: int = 0

    @property
    def twins_dir(self) -> Path:
        return self.tmp / "data" / "twins"

    def bundle(self, name: str, source: Path = DEFAULT_TWIN_BUNDLE) -> Path:
        """A copy of ``source``: the cloud re-signs it with the release key (``--sign``)
        and stamps the release version on it."""
        dest = self.tmp / name
        shutil.copytree(source, dest)
        return dest

    def publish(self, bundle: Path, version: str) -> int:
        out = releases_cli(
            self.cloud_toml, "publish", str(bundle), "--version", version, "--device", DEVICE,
            "--sign",
        )  # fmt: skip
        assert out.startswith("release "), out
        return int(out.split()[1].rstrip(":"))

    def evaluate(self) -> str:
        return releases_cli(self.cloud_toml, "evaluate")

    def release(self, release_id: int) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(releases_cli(self.cloud_toml, "show", str(release_id)))
        return shown

    def _get(self, what: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.cloud.url}/v1/devices/{DEVICE}/{what}", headers=ADMIN, timeout=10
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def reported(self) -> dict[str, Any]:
        reported: dict[str, Any] = self._get("twin")["reported"] or {}
        return reported

    def desired(self) -> dict[str, Any]:
        return self._get("desired")

    def twin_update(self) -> dict[str, Any]:
        update: dict[str, Any] = self.reported().get("twin_update") or {}
        return update

    def is_update(self, **expected: str) -> bool:
        """Whether the cloud's reported twin_update has these fields (one read)."""
        update = self.twin_update()
        return all(update.get(k) == v for k, v in expected.items())

    @contextmanager
    def agent(self) -> Iterator[AgentProcess]:
        port = free_port()
        config = self.tmp / "agent.toml"
        config.write_text(
            agent_config(self.tmp, self.link, port, self.cloud.url, self.token, self.public_key)
        )
        self.starts += 1
        with agent_process(config, port, self.tmp / f"agent-{self.starts}.log") as agent:
            agent.wait_ready()
            wait_until(lambda: "twin" in self.reported(), "the agent's first twin report")
            yield agent


@contextmanager
def simulator(link: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The pump at 1 line a device second, fast-forwarded from now; stopped on the way out."""
    argv = cli("simulate", "--link", str(link), "--timestamps", "--report-load", "--seed", "7")
    argv += ["--speed", f"{SPEED:g}", "--epoch", f"{time.time():.3f}"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(link.exists, "the simulator's pty link")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(GUARD_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(GUARD_S)


@pytest.fixture
def ota(tmp_path: Path) -> Iterator[TwinOta]:
    keys = tmp_path / "keys"
    subprocess.run(
        cloud_cli("releases", "keygen", str(keys)), check=True, capture_output=True, timeout=GUARD_S
    )
    cloud_toml = write_cloud_toml(tmp_path / "cloud.toml", f"sqlite:///{tmp_path / 'cloud.db'}")
    with cloud_toml.open("a") as fh:
        fh.write(
            f'\n[releases]\npublic_key = "{keys / "release.pub"}"\n'
            f'private_key = "{keys / "release.key"}"\nevaluate_interval_s = 0\n'
        )
    token = register_device(cloud_toml, DEVICE)
    cloud = CloudServer(cloud_toml, tmp_path)
    cloud.start()
    link = tmp_path / "pump0"
    try:
        with simulator(link, tmp_path / "simulator.log"):
            yield TwinOta(tmp_path, cloud_toml, cloud, token, keys / "release.pub", link)
    finally:
        cloud.kill_if_running()


@pytest.fixture(scope="session")
def worse_twin_bundle(
    tmp_path_factory: pytest.TempPathFactory, release_key: Ed25519PrivateKey
) -> Path:
    """tests/edge_agent/twin/ota's twin trained on other physics, built once a session."""
    return build_worse_twin(tmp_path_factory.mktemp("e2e-worse") / "twin", release_key)


def rules(agent: AgentProcess) -> list[str]:
    return [a["rule"] for a in agent.get("/alarms?limit=1000")]


def twin_model(agent: AgentProcess) -> str:
    info = agent.get("/twin")
    assert info["available"], info
    model: str = info["model"]
    return model


SCENARIO = {"controls": {"load": [{"value": 0.9, "minutes": 10}]}}


def what_if(agent: AgentProcess) -> dict[str, Any] | None:
    """The agent's answer to SCENARIO; None while its twin has no current state yet."""
    response = httpx.post(f"{agent.url}/twin/whatif", json=SCENARIO, timeout=10)
    if response.status_code == 409:  # TwinStateIncomplete: periods still to come
        return None
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def install(ota: TwinOta, version: str) -> int:
    """Publish the shipped twin re-versioned as ``version``; wait until it is installed."""
    release = ota.publish(ota.bundle(f"twin-{version}"), version)
    wait_until(
        lambda: ota.is_update(state="installed", version=version), f"{version} installed", GUARD_S
    )
    return release


def test_twin_release_reaches_the_device_and_passes_the_guard(ota: TwinOta) -> None:
    with ota.agent() as agent:
        before = twin_model(agent)
        # The twin has its current state: the self-test child rolls the new twin from it.
        wait_until(lambda: what_if(agent) is not None, "a what-if from the current state")
        release = install(ota, "1.1.0")
        answer = what_if(agent)
        reported = ota.reported()
        out = ota.evaluate()
        info = ota.release(release)
        running = twin_model(agent)
        alarms = rules(agent)
        desired = ota.desired()
    pointer = json.loads((ota.twins_dir / "current.json").read_text())
    # A restart starts with the installed twin (the pointer, verified again).
    with ota.agent() as agent:
        after_restart = twin_model(agent)
        reported_again = ota.reported()

    assert before.endswith(f" {SHIPPED}"), before
    assert desired["twin_version"] == "1.1.0" and desired["twin"]["version"] == "1.1.0"
    assert reported["twin"]["version"] == "1.1.0"
    update = reported["twin_update"]
    assert update["bad_versions"] == {}
    assert update["guard_samples"] == GUARD_PERIODS, update
    assert f"release {release} complete" in out, out
    assert info["kind"] == "twin" and info["state"] == "complete", info
    assert [(a["device"], a["status"]) for a in info["assignments"]] == [(DEVICE, "installed")]
    assert running.endswith(" 1.1.0"), running
    assert answer is not None and answer["model"].endswith(" 1.1.0"), answer
    assert ROLLBACK_ALARM not in alarms and REJECTED_ALARM not in alarms
    assert pointer["version"] == "1.1.0"
    assert (ota.twins_dir / pointer["dir"]).is_dir()
    assert not (ota.twins_dir / "trial.json").exists()
    assert after_restart.endswith(" 1.1.0"), after_restart
    assert reported_again["twin"]["version"] == "1.1.0"


def test_worse_twin_is_rolled_back_and_the_previous_twin_restored(
    ota: TwinOta, worse_twin_bundle: Path
) -> None:
    with ota.agent() as agent:
        install(ota, "1.1.0")
        ota.evaluate()
        desired_before = ota.desired()
        release = ota.publish(ota.bundle("twin-worse", worse_twin_bundle), WORSE_VERSION)
        wait_until(
            lambda: ota.is_update(state="rolled_back", version=WORSE_VERSION),
            "the rollback",
            GUARD_S,
        )
        update = ota.twin_update()
        running = twin_model(agent)
        alarms = rules(agent)
        out = ota.evaluate()
        info = ota.release(release)
        desired_after = ota.desired()
        # The device learns the restored desired twin and keeps the good one.
        wait_until(
            lambda: ota.reported().get("desired_version_applied") == desired_after["version"],
            "the restored desired state applied",
            GUARD_S,
        )
        later = twin_model(agent)
        reported = ota.reported()

    assert update["version"] == WORSE_VERSION
    assert "worse by more than" in update["reason"], update
    assert update["bad_versions"][WORSE_VERSION] == update["reason"]
    assert running.endswith(" 1.1.0"), running
    assert ROLLBACK_ALARM in alarms
    assert f"release {release} bad on {DEVICE}" in out, out
    assert [(a["device"], a["status"]) for a in info["assignments"]] == [(DEVICE, "rolled_back")]
    assert info["assignments"][0]["reason"] == update["reason"]
    assert desired_after["version"] > desired_before["version"]
    assert desired_after["twin_version"] == "1.1.0"
    assert desired_after["twin"]["version"] == "1.1.0"
    assert desired_after["twin"]["is_rollback"] is True
    assert desired_after["twin"]["sha256"] == desired_before["twin"]["sha256"]
    assert later.endswith(" 1.1.0"), later
    assert reported["twin"]["version"] == "1.1.0"
    pointer = json.loads((ota.twins_dir / "current.json").read_text())
    assert pointer["version"] == "1.1.0"
    bad = json.loads((ota.twins_dir / "bad_versions.json").read_text())
    assert WORSE_VERSION in bad


def test_tampered_twin_release_is_refused_and_never_runs(ota: TwinOta) -> None:
    release = ota.publish(ota.bundle("twin-110"), "1.1.0")
    sha = ota.release(release)["sha256"]
    # The stored archive is changed after publishing (same size, one byte flipped).
    stored = ota.tmp / "bundles" / sha[:2] / f"{sha}.tar"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    with ota.agent() as agent:
        wait_until(
            lambda: ota.is_update(state="rejected", version="1.1.0"), "the rejection", GUARD_S
        )
        update = ota.twin_update()
        running = twin_model(agent)
        alarms = [a for a in agent.get("/alarms?limit=1000") if a["rule"] == REJECTED_ALARM]
        out = ota.evaluate()
        info = ota.release(release)

    assert "sha256" in update["reason"] and sha in update["reason"], update
    assert "1.1.0" in update["bad_versions"]
    assert running.endswith(f" {SHIPPED}"), running
    assert len(alarms) == 1 and "1.1.0" in alarms[0]["message"], alarms
    assert f"release {release} bad on {DEVICE}" in out, out
    assert info["assignments"][0]["status"] == "rejected", info
    assert not (ota.twins_dir / "current.json").exists()
    assert not any(p.name.startswith("1.1.0-") for p in ota.twins_dir.iterdir())
