"""Over-the-air model updates: download, verify, self-test in a child, swap, live guard,
roll back (docs/ota.md)."""
