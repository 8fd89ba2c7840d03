"""A Debian root with systemd as PID 1, booted in ``systemd-nspawn``, driven from the host.

The root is made once by ``debootstrap`` and cached under CACHE_DIR, keyed by a hash of
what goes into it (suite, architecture, packages): the first build takes minutes, every
later boot starts from the cache in well under a second. A boot never writes to the
cached root: it runs on an overlayfs whose upper layer is a temporary folder.

There is no systemd-machined on the host, so the container is driven by ``nsenter``
into the namespaces of its PID 1 (``systemd-nspawn --boot`` prints nothing we could wait
on; the container's init is the nspawn process's one child).

Run ``python -m tests.packaging.nspawn`` to build (or find) the cached root by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CACHE_DIR = Path(os.environ.get("EDGETWIN_NSPAWN_CACHE", "/var/cache/edgetwin-nspawn"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "procps",
)
"""What the root holds beyond debootstrap's minbase: systemd as init, and the system
python3 (Debian 12: 3.11, the interpreter `edge-agent install` makes its venv from)."""
BUILDER_VERSION = 1
"""Bump to rebuild every cached root (a change in how it is made, not in what)."""

DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def cache_key() -> str:
    arch = DEBIAN_ARCH.get(platform.machine(), platform.machine())
    text = "\n".join([str(BUILDER_VERSION), SUITE, MIRROR, arch, *sorted(PACKAGES)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def missing_prerequisites() -> list[str]:
    """Why this host cannot boot a container (empty when it can)."""
    why = []
    if os.geteuid() != 0:
        why.append("not root (debootstrap, overlay mounts and systemd-nspawn need root)")
    for tool, package in (
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
        ("socat", "socat"),
    ):
        if shutil.which(tool) is None:
            why.append(f"{tool} (Debian: {package})")
    return why


def _say(message: str) -> None:
    # The first build takes minutes: say what is happening, even under pytest -q (-s not
    # needed: stderr of a fixture is shown on failure, and the terminal sees it with -s).
    print(f"[nspawn] {message}", file=sys.stderr, flush=True)


def cached_root() -> Path:
    """The cached root for the current PACKAGES, built first if needed (minutes; progress
    on stderr). Concurrent callers wait for one build (a lock file). Raises
    subprocess.CalledProcessError if debootstrap fails."""
    key = cache_key()
    root = CACHE_DIR / key / "root"
    done = CACHE_DIR / key / "complete"
    if done.exists():
        return root
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(CACHE_DIR / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return root
        _build(root, done)
    return root


def _build(root: Path, done: Path) -> None:
    staging = root.with_name("root.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    arch = DEBIAN_ARCH.get(platform.machine(), platform.machine())
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={arch}",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(staging),
        MIRROR,
    ]
    _say(f"building a Debian {SUITE} root for the systemd tests (once; a few minutes)")
    _say(" ".join(argv))
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    last = 0.0
    for line in proc.stdout:
        # debootstrap prints one line per package; show one every few seconds.
        now = time.monotonic()
        if now - last > 5 or line.startswith(("E:", "W:")):
            _say(f"{now - started:5.0f} s  {line.rstrip()}")
            last = now
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    # A machine id of its own, set at each boot's first start (empty = "first boot").
    (staging / "etc/machine-id").write_text("")
    # No getty on a console nobody reads; the container boots to multi-user quietly.
    for unit in ("console-getty.service", "getty@tty1.service"):
        (staging / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (staging / "etc/systemd/system" / unit).symlink_to("/dev/null")
    (staging / "var/cache/apt/archives").mkdir(parents=True, exist_ok=True)
    for deb in (staging / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    if root.exists():
        shutil.rmtree(root)
    staging.rename(root)
    done.write_text(f"{time.time():.0f}\n")
    _say(f"root ready in {time.monotonic() - started:.0f} s: {root}")


def requirements(repo: Path) -> list[str]:
    """What the device and the cloud need from PyPI (pyproject.toml): the base
    dependencies and the cloud extra without TensorFlow (the export extra: retraining,
    which these tests do not run)."""
    import tomllib

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    cloud = [r for r in project["optional-dependencies"]["cloud"] if "[export]" not in r]
    return sorted({*project["dependencies"], *cloud})


def wheelhouse(repo: Path) -> Path:
    """A folder of wheels for ``requirements(repo)``, built on the host with ``pip wheel``
    (PyPI is reachable here; inside the container TLS to it fails) and cached by a hash
    of the requirements and this interpreter. Raises subprocess.CalledProcessError."""
    reqs = requirements(repo)
    text = "\n".join([sys.version, platform.machine(), *reqs])
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = CACHE_DIR / "wheelhouse" / key
    done = folder / ".complete"
    if done.exists():
        return folder
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _say(f"building the wheelhouse for the container (once): {folder}")
            started = time.monotonic()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--wheel-dir",
                    str(folder),
                    *reqs,
                ],
                check=True,
            )
            done.write_text("\n".join(reqs) + "\n")
            _say(f"wheelhouse ready in {time.monotonic() - started:.0f} s")
    return folder


@dataclass
class Container:
    """A booted container. ``run`` executes a command inside it (as root, in its mount,
    PID, network, UTS and IPC namespaces and its root directory)."""

    name: str
    merged: Path
    nspawn: subprocess.Popen[bytes]
    leader: int
    log: Path
    _mounted: list[Path] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        base_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        envs = [f"{k}={v}" for k, v in {**base_env, **(env or {})}.items()]
        cmd = [
            "nsenter",
            f"--target={self.leader}",
            "--mount",
            "--pid",
            "--net",
            "--uts",
            "--ipc",
            "--root",
            "--wdns=/",
            "env",
            "-i",
            *envs,
            *argv,
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, input=input
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in container: {' '.join(argv)} exited {result.returncode}\n"
                f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
            )
        return result

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, lines: int = 80) -> str:
        return self.run(
            ["journalctl", "--no-pager", "-u", unit, "-n", str(lines)], check=False
        ).stdout

    def path(self, inside: str) -> Path:
        """A path inside the container, seen from the host (through the overlay)."""
        return self.merged / inside.lstrip("/")


def _leader_of(nspawn_pid: int) -> int | None:
    """The container's PID 1 as the host sees it: nspawn's child that runs init."""
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children")
    with contextlib.suppress(OSError):
        for pid in children.read_text().split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/exe").resolve().name == "systemd":
                    return int(pid)
    return None


@contextlib.contextmanager
def booted(
    root: Path, work: Path, *, binds: Sequence[tuple[str, str]] = (), boot_timeout: float = 60
) -> Iterator[Container]:
    """Boot ``root`` (read-only lower layer) on an overlay under ``work`` and wait until
    its systemd has finished starting (``is-system-running`` says running or degraded).
    binds: (host path, container path) pairs. Powers it off on exit."""
    upper, wdir, merged = work / "upper", work / "overlay-work", work / "merged"
    for d in (upper, wdir, merged):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={root},upperdir={upper},workdir={wdir}",
            str(merged),
        ],
        check=True,
    )
    name = f"edgetwin-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
    log = work / "nspawn.log"
    # Unified cgroup hierarchy inside (cgroup v1 on this host otherwise) and the bpf
    # syscall allowed: the container's systemd then enforces DeviceAllow= with BPF
    # device programs; on a v1 hierarchy inside a container it silently cannot.
    env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
    argv = [
        "systemd-nspawn",
        "--boot",
        f"--directory={merged}",
        f"--machine={name}",
        "--register=no",
        "--keep-unit",
        "--private-network",
        "--system-call-filter=bpf",
        "--console=passive",
        "--quiet",
        *(f"--bind={h}:{c}" for h, c in binds),
    ]
    nspawn: subprocess.Popen[bytes] | None = None
    container: Container | None = None
    with open(log, "wb") as out:
        try:
            nspawn = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + boot_timeout
            leader = None
            while leader is None:
                if nspawn.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"container did not start:\n{log.read_text()[-3000:]}")
                leader = _leader_of(nspawn.pid)
                time.sleep(0.05)
            container = Container(name, merged, nspawn, leader, log)
            while True:
                state = container.run(
                    ["systemctl", "is-system-running"], check=False, timeout=10
                ).stdout.strip()
                if state in {"running", "degraded"}:
                    break
                if nspawn.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"container did not finish booting ({state}):\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.1)
            yield container
        finally:
            if nspawn is not None and nspawn.poll() is None:
                if container is not None:
                    container.run(["systemctl", "poweroff", "--no-block"], check=False)
                try:
                    nspawn.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    nspawn.kill()
                    nspawn.wait(timeout=10)
            for _ in range(20):
                if subprocess.run(["umount", str(merged)], check=False).returncode == 0:
                    break
                time.sleep(0.25)


if __name__ == "__main__":
    why = missing_prerequisites()
    if why:
        sys.exit("cannot build: " + "; ".join(why))
    print(cached_root())
    with tempfile.TemporaryDirectory() as tmp, booted(cached_root(), Path(tmp)) as c:
        started = time.monotonic()
        print(c.run(["systemctl", "is-system-running"], check=False).stdout.strip())
        print(c.run(["python3", "-V"]).stdout.strip())
