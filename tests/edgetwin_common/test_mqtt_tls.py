"""The broker settings every MQTT part shares (``BrokerConfig``), over TLS on a real
Mosquitto: the broker's certificate checked against ``ca_file``, a client certificate
where the broker requires one, and a refused connection (counted, retried) otherwise."""

from __future__ import annotations

import threading
from pathlib import Path

from edgetwin_common.mosquitto import Mosquitto, MosquittoTls
from edgetwin_common.mqtt import BrokerConfig, Connection, Message
from edgetwin_common.testing import wait_until
from tests.mqtt_broker import require_mosquitto, write_pki

FAST = {"initial_s": 0.05, "max_s": 0.2}


def connect(broker: Mosquitto, **tls: Path) -> Connection:
    config = BrokerConfig.model_validate({"port": broker.port, "backoff": FAST, **tls})
    connection = Connection(config, f"tls-{len(tls)}-{threading.get_ident()}")
    connection.start()
    return connection


def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    require_mosquitto()
    pki = write_pki(tmp_path / "pki")
    tls = MosquittoTls(pki["ca"], pki["server"], pki["server_key"], require_certificate=True)
    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        received: list[Message] = []
        reader_config = BrokerConfig.model_validate(
            {
                "port": broker.port,
                "backoff": FAST,
                "ca_file": pki["ca"],
                "cert_file": pki["client"],
                "key_file": pki["client_key"],
            }
        )
        reader = Connection(
            reader_config,
            "reader",
            on_connect=lambda c: c.subscribe("edgetwin/#", 1),
            on_message=received.append,
        )
        reader.start()
        assert reader.wait_connected(30)
        writer = connect(
            broker, ca_file=pki["ca"], cert_file=pki["client"], key_file=pki["client_key"]
        )
        no_certificate = connect(broker, ca_file=pki["ca"])
        wrong_ca = connect(
            broker, ca_file=pki["other_ca"], cert_file=pki["client"], key_file=pki["client_key"]
        )
        plain = connect(broker)
        try:
            assert writer.wait_connected(30)
            writer.publish("edgetwin/pump-7/status", b"online", 1, True)
            wait_until(lambda: [m for m in received if m.payload == b"online"], "the message")
            # Refused: no client certificate, a broker certificate from another CA, no TLS.
            for refused in (no_certificate, wrong_ca, plain):
                wait_until(lambda r=refused: r.last_error is not None, "a failed attempt")
                assert not refused.is_connected
            assert "certificate verify failed" in (wrong_ca.last_error or "")
        finally:
            for connection in (reader, writer, no_certificate, wrong_ca, plain):
                connection.stop()
