"""Sensor sources: each yields an async stream of Readings and reports its health.

Plugins (one module each: config model with its ``type`` key, implementation, ``PLUGIN``):
``serial`` (line protocol over pyserial), ``replay`` (CSV file), ``modbus`` (RTU and TCP
through pymodbus; a package of its own), ``gpio`` (gpiozero inputs) and ``onewire``
(DS18B20 through the kernel's w1 files). ``registry`` lists them once and builds the
plugin for a config (``build_source``); ``base`` is the contract, ``threaded`` the
thread-to-loop plumbing and ``linesource`` the line reader they share.
"""
