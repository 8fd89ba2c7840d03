"""Where the install puts things, under a root folder ("/" on a device; a temporary
folder in tests and image builds)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

UNIT_NAME = "edge-agent.service"
USER = "edge-agent"


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    def at(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def venv(self) -> Path:
        return self.at("/opt/edge-agent")

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def agent_bin(self) -> Path:
        return self.venv / "bin" / "edge-agent"

    @property
    def config_dir(self) -> Path:
        return self.at("/etc/edge-agent")

    @property
    def config(self) -> Path:
        return self.config_dir / "agent.toml"

    @property
    def unit(self) -> Path:
        return self.at(f"/etc/systemd/system/{UNIT_NAME}")

    @property
    def sysusers(self) -> Path:
        return self.at("/etc/sysusers.d/edge-agent.conf")

    @property
    def state_dir(self) -> Path:
        return self.at("/var/lib/edge-agent")

    @property
    def is_live_root(self) -> bool:
        """Installing onto the running system (not a folder that becomes one later)."""
        return self.root.resolve() == Path("/")


def packaged(name: str) -> str:
    """A file shipped in edge_agent/install/data (the unit, the config template, ...)."""
    return resources.files("edge_agent.install").joinpath("data", name).read_text("utf-8")


DATA_DIR = "/var/lib/edge-agent"
"""The service's data folder (systemd's StateDirectory=edge-agent)."""


def config_template(name: str, serial_port: str, data_dir: str = DATA_DIR) -> str:
    """The commented agent.toml that ``edge-agent install`` and ``edge-agent init-config``
    write: one serial source, the shipped model, anomaly and sensor-health alarms."""
    return (
        packaged("agent.toml")
        .replace("{name}", name)
        .replace("{serial_port}", serial_port)
        .replace("{data_dir}", data_dir)
    )
