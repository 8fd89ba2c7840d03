"""Retraining from the synced summaries: fleet pretrain, per-device fine-tune on Dask,
int8 export, comparison with the deployed model, promotion. See docs/training.md.

Entry point: ``cloud_sync.training.retrain.retrain``. This package's ``__init__``
imports nothing, so ``cloud-sync`` starts without NumPy, TensorFlow or Dask.
"""
