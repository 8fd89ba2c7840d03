"""The daemon: ``Agent`` wires sources, pipeline, store, sync, OTA and the HTTP API on one
event loop (``agent``); the status-only mode when no model loads (``nomodel``); the
systemd watchdog fed only while the pipeline makes progress (``watchdog``)."""
