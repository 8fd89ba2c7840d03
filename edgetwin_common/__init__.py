"""What every edgetwin package shares that is not a wire contract: the root error, the
strict config base and its TOML loader, the retry policy, systemd's notify protocol,
JSON logs, timestamps, and the helpers tests and benchmarks drive the product with.

The bottom layer: it imports nothing else of edgetwin (a test checks the import graph).
"""
