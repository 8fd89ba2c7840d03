"""Sensor sources: each yields an async stream of Readings and reports its health.

Plugins (one module each: key, config model, implementation): ``serial`` (line protocol
over pyserial) and ``replay`` (CSV file). ``build_source`` picks the plugin for a config.
"""
