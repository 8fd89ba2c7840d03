"""`edge-agent install` / `uninstall`: the device install on Debian or Raspberry Pi OS.

Standard library only, so it also runs straight from the wheel before any venv exists
(``PYTHONPATH=edgetwin-*.whl python3 -m edge_agent.install``). Every step checks what is
there first: running it again changes nothing that is already right (docs/operations.md).
"""
