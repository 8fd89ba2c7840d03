"""The per-sample path: clean → resample → window → forecast → score → alarms → store."""
