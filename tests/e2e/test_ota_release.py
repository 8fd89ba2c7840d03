"""Model releases over the air, end to end: a real `cloud-sync serve` holding a bundle
store and the fleet's release key, a real `edge-agent run` replaying a steady CSV with
[sync] and [ota] on, and the release published with `cloud-sync releases publish`.

A good release travels the whole chain (desired state in a batch ack, download with the
device token, archive check, signature, self-test child, swap, live guard, commit) and
the cloud sees it installed. A release that forecasts worse is swapped in, rolled back by
the guard, marked bad and reverted by the rollout. A release whose stored archive was
tampered with after publishing is refused on its sha256 and never runs. Timeouts are
guards, never assertions.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.model.ota.manager import REJECTED_ALARM, ROLLBACK_ALARM
from edge_agent.model.shipped import DEFAULT_BUNDLE
from edgetwin_common.testing import free_port
from edgetwin_contracts.manifest import MANIFEST_FILE
from tests.e2e.helpers import (
    ADMIN,
    CHANNELS,
    GUARD_S,
    CloudServer,
    agent_toml,
    cloud_cli,
    register_device,
    wait_until,
    write_cloud_toml,
)
from tests.edge_agent.integration.helpers import T0, AgentProcess, agent_process
from tests.edge_agent.model.ota.releases import degraded

pytestmark = pytest.mark.slow

DEVICE = "pump-ota"
GUARD_SAMPLES = 30
SHIPPED = json.loads((DEFAULT_BUNDLE / MANIFEST_FILE).read_bytes())["model"]["version"]


def write_steady_csv(path: Path, rows: int) -> None:
    """``timestamp,temp,pressure,flow``, one row a second from T0: smooth sine waves (no
    alarm fires), long enough that the replay keeps feeding samples for the whole test."""
    lines = ["timestamp," + ",".join(CHANNELS)]
    for i in range(rows):
        w = math.sin(2 * math.pi * i / 40.0)
        lines.append(f"{T0 + i:.1f},{50 + 5 * w:.4f},{5 + 0.5 * w:.4f},{12 - 1.5 * w:.4f}")
    path.write_text("\n".join(lines) + "\n")


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


@dataclass
class Ota:
    """One cloud (SQLite, bundle store, release key pair) and one device registered."""

    tmp: Path
    cloud_toml: Path
    cloud: CloudServer
    token: str
    public_key: Path

    @property
    def models_dir(self) -> Path:
        return self.tmp / "data" / "models"

    def bundle(self, name: str, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        """A copy of the shipped bundle (its manifest edited by ``edit``), unsigned: the
        cloud signs it with the release key on publish (``--sign``)."""
        dest = self.tmp / name
        shutil.copytree(DEFAULT_BUNDLE, dest)
        if edit is not None:
            manifest = json.loads((dest / MANIFEST_FILE).read_bytes())
            edit(manifest)
            (dest / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return dest

    def publish(self, bundle: Path, version: str) -> int:
        out = releases_cli(
            self.cloud_toml,
            "publish",
            str(bundle),
            "--version",
            version,
            "--device",
            DEVICE,
            "--sign",
        )
        assert out.startswith("release "), out
        return int(out.split()[1].rstrip(":"))

    def evaluate(self) -> str:
        return releases_cli(self.cloud_toml, "evaluate")

    def release(self, release_id: int) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(releases_cli(self.cloud_toml, "show", str(release_id)))
        return shown

    def twin(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.cloud.url}/v1/devices/{DEVICE}/twin", headers=ADMIN, timeout=10
        )
        response.raise_for_status()
        twin: dict[str, Any] = response.json()
        return twin

    def model_update(self) -> dict[str, Any]:
        reported = self.twin()["reported"] or {}
        update: dict[str, Any] = reported.get("model_update") or {}
        return update

    def is_update(self, **expected: str) -> bool:
        """Whether the cloud twin's reported model_update has these fields (one read)."""
        update = self.model_update()
        return all(update.get(k) == v for k, v in expected.items())

    def desired(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.cloud.url}/v1/devices/{DEVICE}/desired", headers=ADMIN, timeout=10
        )
        response.raise_for_status()
        desired: dict[str, Any] = response.json()
        return desired

    @contextmanager
    def agent(self) -> Iterator[AgentProcess]:
        port = free_port()
        config = self.tmp / "agent.toml"
        text = agent_toml(
            data_dir=self.tmp / "data",
            csv=self.tmp / "steady.csv",
            port=port,
            sync_url=self.cloud.url,
            token=self.token,
            speed=100.0,
        )
        text += (
            f'\n[ota]\nrelease_public_key = "{self.public_key}"\n'
            f"guard_samples = {GUARD_SAMPLES}\nguard_margin = 0.10\n"
            "backoff = { initial_s = 0.2, max_s = 0.2 }\ndownload_attempts = 3\n"
        )
        config.write_text(text)
        with agent_process(config, port, self.tmp / "agent.log") as agent:
            agent.wait_ready()
            wait_until(lambda: self.twin()["reported"] is not None, "the agent's first report")
            yield agent


@pytest.fixture
def ota(tmp_path: Path) -> Iterator[Ota]:
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
    write_steady_csv(tmp_path / "steady.csv", 40_000)
    cloud = CloudServer(cloud_toml, tmp_path)
    cloud.start()
    try:
        yield Ota(tmp_path, cloud_toml, cloud, token, keys / "release.pub")
    finally:
        cloud.kill_if_running()


def rules(agent: AgentProcess) -> list[str]:
    return [a["rule"] for a in agent.get("/alarms?limit=1000")]


def processed(agent: AgentProcess) -> int:
    return sum(ch["processed"] for ch in agent.status()["channels"])


def test_release_reaches_the_device_and_passes_the_guard(ota: Ota) -> None:
    with ota.agent() as agent:
        assert agent.status()["model"]["version"] == SHIPPED
        first = ota.publish(ota.bundle("b-110"), "1.1.0")
        wait_until(
            lambda: ota.is_update(state="installed", version="1.1.0"), "1.1.0 installed", GUARD_S
        )
        reported = ota.twin()["reported"]
        status = agent.status()
        out = ota.evaluate()
        first_info = ota.release(first)
        first_pointer = json.loads((ota.models_dir / "current.json").read_text())

        # A second release: the first one becomes the previous bundle, kept on the card.
        second = ota.publish(ota.bundle("b-120"), "1.2.0")
        wait_until(
            lambda: ota.is_update(state="installed", version="1.2.0"), "1.2.0 installed", GUARD_S
        )
        status_2 = agent.status()
        ota.evaluate()
        second_info = ota.release(second)
        alarms = rules(agent)
    pointer = json.loads((ota.models_dir / "current.json").read_text())

    assert status["model"]["version"] == "1.1.0"
    assert reported["model"]["version"] == "1.1.0"
    assert reported["model_update"]["version"] == "1.1.0"
    assert reported["model_update"]["bad_versions"] == {}
    assert f"release {first} complete" in out, out
    assert first_info["state"] == "complete"
    assert [(a["device"], a["status"]) for a in first_info["assignments"]] == [
        (DEVICE, "installed")
    ]
    assert first_pointer["version"] == "1.1.0"
    assert (ota.models_dir / first_pointer["dir"]).is_dir()

    assert status_2["model"]["version"] == "1.2.0"
    assert second_info["state"] == "complete"
    assert second_info["assignments"][0]["status"] == "installed"
    assert pointer["version"] == "1.2.0"
    assert pointer["previous"] == first_pointer["dir"]
    assert (ota.models_dir / pointer["dir"]).is_dir()
    assert (ota.models_dir / pointer["previous"]).is_dir()
    assert not (ota.models_dir / "trial.json").exists()
    assert ROLLBACK_ALARM not in alarms and REJECTED_ALARM not in alarms


def test_worse_release_is_rolled_back_and_marked_bad(ota: Ota) -> None:
    with ota.agent() as agent:
        desired_before = ota.desired()
        release = ota.publish(ota.bundle("b-worse", degraded("1.1.0")), "1.1.0")
        wait_until(
            lambda: ota.is_update(state="rolled_back", version="1.1.0"), "the rollback", GUARD_S
        )
        update = ota.model_update()
        status = agent.status()
        alarms = rules(agent)
        out = ota.evaluate()
        info = ota.release(release)
        desired_after = ota.desired()
        # The device learns the reverted desired state and keeps serving the old model.
        wait_until(
            lambda: (
                (ota.twin()["reported"] or {}).get("desired_version_applied")
                == desired_after["version"]
            ),
            "the reverted desired state applied",
            GUARD_S,
        )
        count = processed(agent)
        wait_until(lambda: processed(agent) > count + 30, "samples after the revert")
        later = agent.status()

    assert update["version"] == "1.1.0"
    assert "worse by more than" in update["reason"], update
    assert update["bad_versions"]["1.1.0"] == update["reason"]
    assert status["model"]["version"] == SHIPPED
    assert ROLLBACK_ALARM in alarms
    assert f"release {release} bad on {DEVICE}" in out, out
    assert [(a["device"], a["status"]) for a in info["assignments"]] == [(DEVICE, "rolled_back")]
    assert info["assignments"][0]["reason"] == update["reason"]
    # A release to one device has one stage, the last: the bad device is reverted and
    # nothing is left pending, so the release is complete (docs/releases.md), not stopped.
    assert info["state"] == "complete", info
    assert desired_after["version"] > desired_before["version"]
    assert desired_after["model"] == desired_before["model"]
    assert desired_after["model_version"] == desired_before["model_version"]
    assert later["model"]["version"] == SHIPPED
    assert not (ota.models_dir / "current.json").exists()
    bad = json.loads((ota.models_dir / "bad_versions.json").read_text())
    assert "1.1.0" in bad


def test_tampered_release_is_rejected_and_the_old_model_keeps_serving(ota: Ota) -> None:
    release = ota.publish(ota.bundle("b-110"), "1.1.0")
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
        update = ota.model_update()
        refused = ota.twin()["reported"]["refused"]
        count = processed(agent)
        wait_until(lambda: processed(agent) > count + 30, "samples after the rejection")
        status = agent.status()
        alarms = [a for a in agent.get("/alarms?limit=1000") if a["rule"] == REJECTED_ALARM]

    assert update["version"] == "1.1.0"
    assert "sha256" in update["reason"] and sha in update["reason"], update
    assert "1.1.0" in update["bad_versions"]
    assert any(r["key"] == "model_version" for r in refused), refused
    assert status["model"]["version"] == SHIPPED
    assert len(alarms) == 1 and "1.1.0" in alarms[0]["message"], alarms
    assert not (ota.models_dir / "current.json").exists()
