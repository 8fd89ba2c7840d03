"""What the device and the cloud must agree on, in one dependency-light place.

The model bundle manifest schema, its signature scheme and the ways a bundle can be
rejected live here so that ``edge_agent`` (the device) and ``model_export`` /
``cloud_sync`` (the cloud) cannot drift apart.
"""
