"""Alarm rules, their state machine and history."""
