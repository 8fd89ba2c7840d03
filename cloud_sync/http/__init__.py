"""The HTTP API and the fleet page (``create_app``)."""
