"""int8 inference on LiteRT: backend selection, quantization arithmetic, the forecaster."""
