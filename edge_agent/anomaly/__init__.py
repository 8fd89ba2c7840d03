"""Anomaly scores from forecast residuals."""
