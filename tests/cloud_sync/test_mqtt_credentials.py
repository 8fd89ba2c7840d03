"""`cloud-sync devices add` writes each device's broker credentials and ACL, and a real
Mosquitto enforces them: a device logs in with its token, uses its own topics, and can
neither publish nor subscribe on another device's."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.cli import main
from cloud_sync.mqtt.credentials import hash_password
from edgetwin_common.mosquitto import Mosquitto
from edgetwin_common.testing import wait_until
from tests.mqtt_broker import Subscriber, require_mosquitto


def add_device(config: Path, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["devices", "add", name, "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "reload mosquitto" in err
    return out.strip()


class Client:
    """A device-side MQTT 5 client: its connection result, SUBACK and PUBACK codes."""

    def __init__(self, broker: Mosquitto, user: str, password: str) -> None:
        self.connected = threading.Event()
        self.reason: ReasonCode | None = None
        self.subacks: list[int] = []
        self.pubacks: dict[int, int] = {}
        self.received: list[str] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._connect
        self.client.on_message = lambda c, u, message: self.received.append(message.topic)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.extend(
            code.value for code in codes
        )
        self.client.on_publish = lambda c, u, mid, code, p: self.pubacks.update({mid: code.value})
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_until(self.connected.is_set, "CONNACK")

    def _connect(
        self, client: object, userdata: object, flags: object, reason: ReasonCode, p: object
    ) -> None:
        self.reason = reason
        self.connected.set()

    def publish(self, topic: str) -> int:
        info = self.client.publish(topic, b"payload", qos=1)
        wait_until(lambda: info.mid in self.pubacks, f"PUBACK of {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> int:
        before = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        wait_until(lambda: len(self.subacks) > before, f"SUBACK of {topic}")
        return self.subacks[-1]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_mosquitto_password_hash_format() -> None:
    hashed = hash_password("secret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
    assert hash_password("secret") != hash_password("secret")  # salted


def test_device_credentials_and_acl_isolate_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_mosquitto()
    passwords, acl = tmp_path / "broker" / "passwd", tmp_path / "broker" / "acl"
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "cloud.db"}"\n\n[mqtt]\n'
        f'password_file = "{passwords}"\nacl_file = "{acl}"\n'
        'broker = { username = "cloud-sync", password = "cloud-secret" }\n'
    )
    token_a = add_device(config, "pump-a", capsys)
    token_b = add_device(config, "pump-b", capsys)
    assert "pump-a:$7$101$" in passwords.read_text()
    with Mosquitto(tmp_path / "run", password_file=passwords, acl_file=acl) as broker:
        cloud = Subscriber(broker, ["edgetwin/#"], "cloud-sync", "cloud-secret")
        a = Client(broker, "pump-a", token_a)
        b = Client(broker, "pump-b", token_b)
        wrong = Client(broker, "pump-a", token_b)
        try:
            assert a.reason is not None and not a.reason.is_failure
            assert wrong.reason is not None and wrong.reason.is_failure  # bad password
            # Its own topics: allowed.
            assert a.publish("edgetwin/pump-a/batch") == 0
            assert a.subscribe("edgetwin/pump-a/desired") < 0x80
            # Another device's: refused (0x87 not authorized) and never delivered.
            assert a.publish("edgetwin/pump-b/batch") == 0x87
            assert a.publish("edgetwin/pump-b/status") == 0x87
            # Its subscriptions to another device's topics deliver nothing: Mosquitto's
            # acl_file grants the SUBACK but checks "read" on every message it would send.
            for pattern in ("edgetwin/pump-b/desired", "edgetwin/pump-b/ack", "edgetwin/#"):
                a.subscribe(pattern)
            b.subscribe("edgetwin/pump-b/desired")
            # Nor can it answer for the cloud on its own ack topic.
            assert a.publish("edgetwin/pump-a/ack") == 0x87
            assert b.publish("edgetwin/pump-b/batch") == 0
            wait_until(lambda: cloud.on("edgetwin/pump-b/batch"), "pump-b's own batch")
            assert cloud.on("edgetwin/pump-a/batch") and not cloud.on("edgetwin/pump-a/ack")
            assert len(cloud.on("edgetwin/pump-b/batch")) == 1  # pump-a's attempt never came
            # The cloud publishes to pump-b: pump-b gets it, pump-a (subscribed to
            # pump-b's topics and to everything) gets nothing of it.
            sender = Client(broker, "cloud-sync", "cloud-secret")
            assert sender.publish("edgetwin/pump-b/desired") == 0
            assert sender.publish("edgetwin/pump-b/ack") == 0
            wait_until(lambda: any(t == "edgetwin/pump-b/desired" for t in b.received))
            sender.publish("edgetwin/pump-a/desired")  # a's own: the marker that all arrived
            wait_until(lambda: "edgetwin/pump-a/desired" in a.received, "pump-a's own desired")
            assert not [t for t in a.received if "/pump-b/" in t], a.received
            sender.close()
        finally:
            for client in (a, b, wrong):
                client.close()
            cloud.close()

    # Rotating the token replaces the entry: the old password stops working.
    assert main(["devices", "rotate-token", "pump-a", "--config", str(config)]) == 0
    new_token = capsys.readouterr().out.strip()
    assert passwords.read_text().count("pump-a:") == 1
    with Mosquitto(tmp_path / "run2", password_file=passwords, acl_file=acl) as broker:
        old, new = Client(broker, "pump-a", token_a), Client(broker, "pump-a", new_token)
        assert old.reason is not None and old.reason.is_failure
        assert new.reason is not None and not new.reason.is_failure
        old.close()
        new.close()
