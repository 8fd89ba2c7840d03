"""The cross-channel surprise: what each channel reads against what the twin predicts
from the others, once per twin period (docs/anomaly-score.md)."""
