"""One MQTT connection, as the device's transport, the MQTT output and the cloud use it:
the broker's settings (``BrokerConfig``: address, credentials, TLS, client
certificate, keep-alive, the reconnect backoff) and ``Connection``, a paho-mqtt 2 client
driven by its own thread that reconnects with the one retry policy
(``edgetwin_common.retry``) rather than paho's own.

What to do on each (re)connection (subscribe, publish a birth message) goes in
``on_connect``: it runs on the connection's thread after every successful CONNACK, so a
broker restart restores the subscriptions. Callbacks must not block.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, SecretStr, field_serializer, model_validator

from edgetwin_common.config import Strict
from edgetwin_common.retry import Backoff, BackoffConfig, Jitter

__all__ = ["BrokerConfig", "Connection", "Will", "correlation_of"]

log = logging.getLogger(__name__)

Message = paho.MQTTMessage
_LOOP_S = 0.5


def correlation_of(message: Message) -> bytes | None:
    """The MQTT 5 correlation data of a received message, if it has some."""
    properties = getattr(message, "properties", None)
    data = getattr(properties, "CorrelationData", None) if properties is not None else None
    return bytes(data) if data is not None else None


class BrokerConfig(Strict):
    """Where the broker is and how to log in."""

    host: str = "127.0.0.1"
    """Host name or address of the broker."""
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    """TCP port (1883 plain, 8883 usually for TLS)."""
    username: str | None = None
    """User name, when the broker asks for one (Mosquitto's password_file)."""
    password: SecretStr | None = None
    """Password for ``username``."""
    tls: bool = False
    """Connect over TLS. The broker's certificate is checked against ``ca_file`` (or
    the system's CAs when unset) and its host name."""
    ca_file: Path | None = None
    """PEM file of the CA(s) that signed the broker's certificate (implies ``tls``)."""
    cert_file: Path | None = None
    """This client's certificate (PEM), for brokers that authenticate clients by
    certificate (``require_certificate true``); needs ``key_file``."""
    key_file: Path | None = None
    """The private key of ``cert_file`` (PEM)."""
    keepalive_s: Annotated[int, Field(ge=5, le=65535)] = 30
    """Seconds between pings when idle; the broker declares the client gone (and sends
    its will) after 1.5× this without a packet."""
    backoff: BackoffConfig = BackoffConfig(initial_s=0.5, max_s=30.0)
    """Waits between reconnection attempts (plus jitter: many devices share a broker)."""

    @field_serializer("password", when_used="json")
    def _password_json(self, password: SecretStr | None) -> str | None:
        # A config written back as JSON must still log in; repr and logs stay masked.
        return password.get_secret_value() if password is not None else None

    @model_validator(mode="after")
    def _certificate_pair(self) -> BrokerConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.password is not None and self.username is None:
            raise ValueError("password needs username")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    def where(self) -> str:
        return f"mqtt{'s' if self.uses_tls else ''}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for a client that vanished."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Connection:
    """A paho-mqtt client on its own thread, connected to ``config``'s broker and kept
    connected: after a refused or lost connection it waits ``Backoff(config.backoff)``
    (reset by each accepted connection) and tries again, until ``stop``.

    ``on_connect(connection)`` runs after each accepted connection (subscribe here);
    ``on_message(message)`` for each message received. ``publish`` may be called from
    any thread; while disconnected, QoS ≥ 1 messages wait in paho's queue.
    Counters: connects, connect_failures, disconnects.
    """

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        *,
        on_connect: Callable[[Connection], None] | None = None,
        on_message: Callable[[Message], None] | None = None,
        will: Will | None = None,
        mqtt5: bool = True,
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self._on_connect = on_connect
        self._on_message = on_message
        self._mqtt5 = mqtt5
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self.counters: dict[str, int] = {"connects": 0, "connect_failures": 0, "disconnects": 0}
        self.last_error: str | None = None
        self._backoff = Backoff(config.backoff, Jitter.ADDED)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        protocol = MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if mqtt5 else clean_start,
        )
        # Queue while disconnected rather than failing: the caller decides what to drop.
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else None
            self.client.username_pw_set(config.username, password)
        if config.uses_tls:
            self.client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.cert_file) if config.cert_file else None,
                keyfile=str(config.key_file) if config.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if will is not None:
            self.client.will_set(will.topic, will.payload, will.qos, will.retain)
        self.client.on_connect = self._connected_cb
        self.client.on_disconnect = self._disconnected_cb
        self.client.on_message = self._message_cb

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected or ``timeout_s`` passed; True when connected."""
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        """Start the connection's thread (it connects, and reconnects, on its own)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"mqtt:{self.client_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly (no will is sent) and end the thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        self._connected.clear()

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        correlation: bytes | None = None,
    ) -> paho.MQTTMessageInfo:
        """Queue one message (sent at once when connected). ``correlation``: MQTT 5
        correlation data, which a reply repeats. Raises ValueError for a bad topic or QoS."""
        properties: Properties | None = None
        if correlation is not None and self._mqtt5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation
        return self.client.publish(topic, payload, qos, retain, properties)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.client.subscribe(topic, qos)

    # -- the connection's thread ---------------------------------------------------

    def _run(self) -> None:
        client = self.client
        while not self._stop.is_set():
            try:
                self._connect()
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._failed(f"connect to {self.config.where()}: {exc}")
                continue
            while not self._stop.is_set():
                # Publishes from other threads wake the select (paho's socket pair), so
                # the timeout only bounds how long ``stop`` waits: no busy polling.
                rc = client.loop(timeout=_LOOP_S)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            if self._stop.is_set():
                client.disconnect()
                client.loop(timeout=0.05)
                break
            self._failed(f"connection to {self.config.where()} lost")
        with contextlib.suppress(OSError, ValueError):
            client.socket() and client.disconnect()

    def _connect(self) -> None:
        properties: Properties | None = None
        if self._mqtt5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._session_expiry_s
        self.client.connect(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=self._clean_start if self._mqtt5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )

    def _failed(self, what: str) -> None:
        self._connected.clear()
        delay = self._backoff.next_delay()
        if self.last_error != what:
            log.warning("mqtt %s: %s; retrying in %.1f s", self.client_id, what, delay)
        self.last_error = what
        self._stop.wait(delay)

    def _connected_cb(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.counters["connect_failures"] += 1
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("mqtt %s: %s", self.client_id, self.last_error)
            return
        self.counters["connects"] += 1
        self._backoff.reset()
        self.last_error = None
        self._connected.set()
        if self._on_connect is not None:
            self._on_connect(self)

    def _disconnected_cb(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected.is_set():
            self.counters["disconnects"] += 1
        self._connected.clear()

    def _message_cb(self, client: paho.Client, userdata: Any, message: Message) -> None:
        if self._on_message is not None:
            self._on_message(message)
