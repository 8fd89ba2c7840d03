"""Sensor sources: each yields an async stream of Readings and reports its health."""
