"""The local HTTP status API (FastAPI)."""
