"""edgetwin model export: train a forecaster, convert it to full-integer int8 TFLite,
and write a signed model bundle the device loads.

This is the cloud / workstation side. TensorFlow is imported only inside the steps that
need it (training and conversion), so ``model-export --help``, ``inspect`` and
``verify`` run on a device-sized install. See docs/model-export.md.
"""
