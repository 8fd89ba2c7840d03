"""edgetwin cloud side: batch ingest, device twins, the device registry, the fleet page.

``cloud-sync serve`` runs the HTTP service (``cloud_sync.http.app.create_app``) on an
SQLite file or PostgreSQL; see docs/cloud.md.
"""

__version__ = "0.1.0"
