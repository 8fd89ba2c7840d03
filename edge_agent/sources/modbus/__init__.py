"""Modbus source: RTU over a serial line (RS-485, RS-232, USB adapters) and TCP gateways.

``config`` (the register map as configured), ``decode`` (registers -> numbers, pure),
``plan`` (registers grouped into the fewest requests), ``source`` (the polling thread).
"""
