"""Sensor sources: each yields an async stream of Readings and reports its health.

Plugins (one module each: key, config model, implementation): ``serial`` (line protocol
over pyserial), ``replay`` (CSV file), ``modbus`` (RTU and TCP through pymodbus; a
package of its own), ``gpio`` (gpiozero inputs) and ``onewire`` (DS18B20 through the
kernel's w1 files). ``build_source`` picks the plugin for a config.
"""
