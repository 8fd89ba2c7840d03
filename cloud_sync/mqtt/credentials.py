"""Each device's broker credentials and ACL, for Mosquitto's ``password_file`` and
``acl_file`` (docs/mqtt.md).

A device logs in with its name as the username and its cloud token as the password
(one secret per device, rotated together). Its ACL lets it write only its own batch,
twin request and status topics and read only its own ack, twin and desired topics, so
one device can neither publish nor subscribe on another's. The cloud's own user reads
and writes the whole tree.

Passwords are hashed as ``mosquitto_passwd`` does by default since Mosquitto 2.0:
``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``. Files are rewritten
whole (temporary file, then rename) with a device's previous lines replaced; the
broker reads them again on SIGHUP.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from cloud_sync.mqtt.config import MqttSection
from edgetwin_contracts.mqtt import PREFIX, topic

__all__ = [
    "broker_credentials",
    "device_acl",
    "hash_password",
    "write_cloud_user",
    "write_device",
]

ITERATIONS = 101
"""mosquitto_passwd's default PBKDF2 iteration count."""
SALT_BYTES = 12
_DEVICE_WRITES = ("batch", "twin/get", "status")
_DEVICE_READS = ("ack", "twin", "desired")
_MARK = "# edgetwin: "


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """A Mosquitto password hash (``$7$``: PBKDF2-HMAC-SHA512), as mosquitto_passwd writes."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def device_acl(name: str) -> list[str]:
    """The ACL block of device ``name``."""
    lines = [f"{_MARK}device {name}", f"user {name}"]
    lines += [f"topic write {topic(name, leaf)}" for leaf in _DEVICE_WRITES]
    lines += [f"topic read {topic(name, leaf)}" for leaf in _DEVICE_READS]
    return lines


def write_device(password_file: Path, acl_file: Path, name: str, password: str) -> None:
    """Add or replace device ``name``'s password entry and ACL block."""
    _replace_password(password_file, name, password)
    _replace_block(acl_file, f"device {name}", device_acl(name))


def write_cloud_user(password_file: Path, acl_file: Path, user: str, password: str) -> None:
    """Add or replace the cloud's user: read and write every device's topics."""
    _replace_password(password_file, user, password)
    block = [f"{_MARK}cloud {user}", f"user {user}", f"topic readwrite {PREFIX}/#"]
    _replace_block(acl_file, f"cloud {user}", block)


def _replace_password(path: Path, user: str, password: str) -> None:
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0] != user]
    kept.append(f"{user}:{hash_password(password)}")
    _write(path, kept)


def _replace_block(path: Path, key: str, block: list[str]) -> None:
    """Blocks start with a marker line and end at the next marker (or the end)."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith(_MARK):
            skipping = line == f"{_MARK}{key}"
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    if kept:
        kept.append("")
    _write(path, kept + block)


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    # The broker's user must read the files; nobody else needs to.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(temporary, path)


def broker_credentials(config: MqttSection, name: str, token: str) -> str:
    """Write device ``name``'s entries (its token as the password) and the cloud's own
    user's to [mqtt]'s password and ACL files; what to tell the operator."""
    assert config.password_file is not None and config.acl_file is not None
    write_device(config.password_file, config.acl_file, name, token)
    broker = config.broker
    if broker.username is not None and broker.password is not None:
        password = broker.password.get_secret_value()
        write_cloud_user(config.password_file, config.acl_file, broker.username, password)
    return (
        f"broker: user {name!r} (password: the token) written to {config.password_file} and"
        f" {config.acl_file}; reload mosquitto (SIGHUP) to apply. On the device: [sync]"
        f' transport = "mqtt", [sync.mqtt.broker] username = "{name}", password = the token.'
    )
