"""Sensor sources: each yields an async stream of Readings and reports its health.

One module per plugin (its config model with its ``type`` key, its implementation and
``PLUGIN``; ``modbus`` is a package of its own); ``registry.SOURCES`` lists them once and
builds the plugin for a config (``build_source``). ``base`` is the contract every source
implements, ``threaded`` the thread-to-loop plumbing of blocking drivers, ``linesource``
the line reader over anything pyserial opens and ``lineproto`` its parsing.
"""
