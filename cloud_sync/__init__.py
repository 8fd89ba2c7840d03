"""edgetwin cloud side: batch ingest, device twins, retraining and model releases.

The service itself arrives with the cloud-sync issue; today the package holds the
command entry point so installs and scripts can rely on its name.
"""

__version__ = "0.1.0"
