"""A real Mosquitto for the MQTT tests (started by the test on a free port, with a
generated config) and a plain paho subscriber that records what it receives."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgetwin_common import mosquitto
from edgetwin_common.mosquitto import Mosquitto
from edgetwin_common.testing import wait_until
from tests.conftest import require


def require_mosquitto() -> None:
    require(
        mosquitto.binary() is not None,
        "mosquitto missing (Debian: apt install mosquitto; make debian-packages)",
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_mosquitto()
    with Mosquitto(tmp_path / "broker") as running:
        yield running


def write_passwords(path: Path, users: dict[str, str]) -> None:
    """A password file written with Mosquitto's own tool."""
    path.unlink(missing_ok=True)
    for user, password in users.items():
        subprocess.run(
            [
                "mosquitto_passwd",
                "-b",
                *(["-c"] if not path.exists() else []),
                str(path),
                user,
                password,
            ],
            check=True,
            capture_output=True,
        )


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int


class Subscriber:
    """A plain paho client (MQTT 3.1.1) subscribed to ``topics``; ``messages`` in
    order of arrival. ``refused`` holds the SUBACK codes >= 0x80."""

    def __init__(
        self,
        broker: Mosquitto,
        topics: list[str],
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self.refused: list[int] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="")
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._message
        self.client.on_subscribe = self._suback
        self._topics = topics
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, "the subscription")

    def _suback(
        self, client: object, userdata: object, mid: int, codes: list, props: object
    ) -> None:
        self.refused = [code.value for code in codes if code.is_failure]
        self._subscribed.set()

    def _message(self, client: object, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(message.topic, message.payload, bool(message.retain), message.qos)
            )

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate
    signed by it, and a second CA that signed nothing here (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    paths: dict[str, Path] = {}

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def save(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        paths[f"{stem}_key"] = directory / f"{stem}.key"
        paths[f"{stem}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths[stem] = directory / f"{stem}.pem"
        paths[stem].write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        common: str,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
        sans: list[x509.GeneralName] | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer_name, issuer_key = issuer if issuer is not None else (name(common), key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
        return key, builder.sign(issuer_key, hashes.SHA256())

    ca_key, ca = issue("edgetwin test CA", None)
    save("ca", ca_key, ca)
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    save("server", *issue("127.0.0.1", (ca.subject, ca_key), sans))
    save("client", *issue("pump-7", (ca.subject, ca_key)))
    save("other_ca", *issue("another CA", None))
    return paths
