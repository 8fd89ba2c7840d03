"""The cross-channel twin: one model per device, rolled forward under planned controls
to answer what-if scenarios (docs/twin.md)."""
