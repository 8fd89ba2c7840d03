"""Cleaning: per-channel plausibility checks and resampling to the model's period."""
