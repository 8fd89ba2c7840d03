"""Alarm actions: what happens when an alarm is raised, acknowledged or cleared."""
