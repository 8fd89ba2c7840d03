"""Alarm rule types: one module each (its config model and its check), listed once in
``registry.py``. See docs/architecture.md, "An alarm rule, step by step"."""
