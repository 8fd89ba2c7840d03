"""Proves which backend the contract suite ran on (it runs once per backend)."""

from __future__ import annotations

import os

from edge_agent.model.bundle import load_bundle
from edge_agent.model.inference.backend import Backend
from edge_agent.model.shipped import DEFAULT_BUNDLE, default_public_key


def test_the_requested_backend_is_the_one_running() -> None:
    wanted = os.environ.get("EDGETWIN_BACKEND", "auto")
    model = load_bundle(DEFAULT_BUNDLE, default_public_key())
    expected = Backend.LITERT if wanted == "auto" else Backend(wanted)
    assert model.backend is expected
