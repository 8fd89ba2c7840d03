"""Structured logging: one JSON object per line (journald-friendly) or plain text."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

# Attributes every LogRecord has; anything else was passed with extra={...}.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "json") -> None:
    """Route the root logger to stderr in the chosen format (idempotent). Per-request
    INFO lines of HTTP client libraries are shown only at ``debug``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _quiet_chatty_libraries(level)


# Libraries that log one INFO line per request: at the default level a sync every few
# seconds would fill the journal with them; they are shown when the level is debug.
_CHATTY = ("httpx", "httpcore")


def _quiet_chatty_libraries(level: str) -> None:
    quiet = level.lower() != "debug"
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


@contextlib.contextmanager
def native_stderr_to_log(logger: logging.Logger) -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 inside the block (the TFLite
    runtime prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` on every
    model load): its ``INFO:`` lines go to ``logger`` at debug level, anything else is
    written back to stderr as it was (an error from the runtime stays visible)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (a daemon with fd 2 closed): nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read()
        kept = []
        for line in text.decode("utf-8", "replace").splitlines(keepends=True):
            if line.startswith("INFO: "):
                logger.debug("%s", line.strip())
            else:
                kept.append(line)
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
