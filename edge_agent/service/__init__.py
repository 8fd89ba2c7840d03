"""Running under systemd: the notify protocol (READY, WATCHDOG, STATUS, STOPPING) and
the watchdog that pings only while the pipeline makes progress (docs/operations.md)."""
