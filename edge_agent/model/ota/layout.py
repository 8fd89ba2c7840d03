"""The models folder on the card, and how it changes without ever being half-written.

    models_dir/
      current.json            {"version", "dir", "previous"}: the model to start with
      trial.json              {"version", "dir", "attempts"}: a release under live guard
      bad_versions.json       {"<version>": "<reason>"}
      <version>-<sha12>/      one installed bundle (model.tflite, manifest.json, manifest.sig)
      .partial/<sha>.tar      a download in progress (resumed by HTTP Range)
      .tmp-<sha>/             an archive being unpacked and verified

Every JSON file is replaced atomically: written to a temp file, fsynced, renamed over
the old one, then the folder is fsynced, so a power cut leaves either the old or the
new content. An install folder appears by renaming a complete, fsynced temp folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
TRIAL_FILE = "trial.json"
BAD_FILE = "bad_versions.json"
PARTIAL_DIR = ".partial"
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True, slots=True)
class Pointer:
    """Which installed bundle to run (dir is a name inside models_dir)."""

    version: str
    dir: str
    previous: str | None = None


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable (no-op where dirs can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def install_name(version: str, sha256: str) -> str:
    """The folder name of an installed release: '<version>-<sha256[:12]>', made safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", version)
    return f"{safe}-{sha256[:12]}"


def rename_into(tmp: Path, final: Path) -> None:
    """Make a complete, fsynced temp folder an install folder, durably."""
    os.replace(tmp, final)
    fsync_dir(final.parent)


def dir_in(root: Path, path: Path) -> str | None:
    """The folder name of ``path`` if it is an install inside ``root``, else None."""
    try:
        if path.resolve().parent == root.resolve():
            return path.name
    except OSError:
        return None
    return None


class ModelsDir:
    """The models folder (and the twin's twins folder, same layout). Only an OTA manager
    writes it; ``selection`` reads the pointer at start. Methods raise OSError for a
    failing card."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial_dir = root / PARTIAL_DIR

    def ensure(self) -> None:
        self.partial_dir.mkdir(parents=True, exist_ok=True)

    # -- pointers ------------------------------------------------------------------

    def _read_json(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.root / name).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("unreadable %s ignored: %s", self.root / name, exc)
            return None
        return data if isinstance(data, dict) else None

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / name, (json.dumps(data, sort_keys=True) + "\n").encode())

    def current(self) -> Pointer | None:
        """The pointer to the model to start with, or None (use the configured one)."""
        data = self._read_json(CURRENT_FILE)
        if data is None:
            return None
        try:
            return Pointer(str(data["version"]), str(data["dir"]), data.get("previous"))
        except KeyError:
            return None

    def set_current(self, pointer: Pointer) -> None:
        self._write_json(
            CURRENT_FILE,
            {"version": pointer.version, "dir": pointer.dir, "previous": pointer.previous},
        )

    def trial(self) -> dict[str, Any] | None:
        return self._read_json(TRIAL_FILE)

    def set_trial(self, version: str, dir_name: str, attempts: int) -> None:
        self._write_json(TRIAL_FILE, {"version": version, "dir": dir_name, "attempts": attempts})

    def clear_trial(self) -> None:
        (self.root / TRIAL_FILE).unlink(missing_ok=True)
        fsync_dir(self.root)

    def bad_versions(self) -> dict[str, str]:
        data = self._read_json(BAD_FILE) or {}
        return {str(k): str(v) for k, v in data.items()}

    def mark_bad(self, version: str, reason: str) -> dict[str, str]:
        bad = self.bad_versions()
        bad[version] = reason
        self._write_json(BAD_FILE, bad)
        return bad

    def forget_bad(self, version: str) -> None:
        bad = self.bad_versions()
        if bad.pop(version, None) is not None:
            self._write_json(BAD_FILE, bad)

    def recover_trial(self, running_version: str | None, max_trials: int) -> tuple[str, str] | None:
        """At start: a release found under guard (the agent stopped during its trial)
        has counted one attempt; after ``max_trials`` it is marked bad. Returns
        (version, reason) when it was marked bad, else None."""
        trial = self.trial()
        if trial is None:
            return None
        version = str(trial.get("version"))
        attempts = int(trial.get("attempts") or 0)
        if version == running_version:
            self.clear_trial()
        elif attempts >= max_trials:
            reason = f"the agent stopped {attempts} times during the live guard of {version}"
            self.mark_bad(version, reason)
            self.clear_trial()
            return version, reason
        return None

    def attempts(self, version: str) -> int:
        """The attempt a new trial of ``version`` is: one more than a trial left over."""
        trial = self.trial()
        if trial is not None and trial.get("version") == version:
            return int(trial.get("attempts") or 0) + 1
        return 1

    # -- folders -------------------------------------------------------------------

    def path(self, dir_name: str) -> Path:
        return self.root / dir_name

    def partial(self, sha256: str) -> Path:
        return self.partial_dir / f"{sha256}.tar"

    def temp_dir(self, sha256: str) -> Path:
        return self.root / f"{TMP_PREFIX}{sha256[:12]}"

    def cleanup(self) -> None:
        """Remove what a power cut can leave behind: half-unpacked temp folders and temp
        pointer files. Partial downloads stay (they resume)."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name.startswith(TMP_PREFIX) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.endswith(".json.tmp"):
                entry.unlink(missing_ok=True)

    def prune(self, keep: set[str]) -> None:
        """Delete installed bundles not in ``keep`` (folder names) and finished partials."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
