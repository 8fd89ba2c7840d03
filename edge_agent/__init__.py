"""edgetwin device agent: sensors in, int8 forecasts and anomaly scores out.

Importing this package never imports TensorFlow; inference runs on LiteRT
(ai-edge-litert) or, as a legacy backend, tflite-runtime.
"""

__version__ = "0.1.0"
