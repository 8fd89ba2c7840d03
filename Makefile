# The two commands of the quick start: `make demo` and `make test`.
# Both create or refresh .venv by themselves from pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# tflite-runtime has wheels for Python <= 3.11 only: its contract tests run in a second venv.
TFLITE_PYTHON ?= $(shell command -v python3.11 || echo $(PYTHON))
TFLITE_VENV := .venv-tflite
OUT := out
DEMO_SECONDS ?= 60
# Debian packages the tests use; scripts/debian-packages.sh installs them as root.
DEBIAN_PACKAGES += socat
# Headless Chromium for the status/fleet page tests (Playwright drives it), with a font
# so screenshots show text; systemd for systemd-analyze, systemd-sysusers, systemctl.
DEBIAN_PACKAGES += chromium fonts-liberation systemd
# The units under a real systemd (tests/packaging/test_systemd.py): a cached Debian root
# booted with systemd-nspawn.
DEBIAN_PACKAGES += systemd-container debootstrap
# A real broker (and mosquitto_passwd) for the MQTT tests and bench (docs/mqtt.md).
DEBIAN_PACKAGES += mosquitto

.PHONY: demo test lint typecheck pytest bench default-model clean debian-packages arm64-smoke wheel

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edgetwin needs Python >= 3.11, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cloud,dev]"
	touch $@

# Best effort: where the wheel cannot be had, the reason lands in UNAVAILABLE and the
# backend contract test prints it (and fails under CI=true).
$(TFLITE_VENV)/.installed: pyproject.toml
	@rm -f $(TFLITE_VENV)/UNAVAILABLE
	@( test -x $(TFLITE_VENV)/bin/python || $(TFLITE_PYTHON) -m venv $(TFLITE_VENV) ) \
	 && $(TFLITE_VENV)/bin/python -m pip install --quiet --upgrade pip \
	 && $(TFLITE_VENV)/bin/python -m pip install --quiet -e ".[tflite]" pytest hypothesis \
	 && $(TFLITE_VENV)/bin/python -c 'import tflite_runtime.interpreter' \
	 && touch $@ \
	 || { mkdir -p $(TFLITE_VENV); echo "tflite-runtime could not be installed for $$($(TFLITE_PYTHON) --version 2>&1) on $$(uname -m) (wheels exist for CPython <= 3.11 only)" > $(TFLITE_VENV)/UNAVAILABLE; cat $(TFLITE_VENV)/UNAVAILABLE; }

demo: $(BIN)/.installed
	$(BIN)/edge-agent demo --duration $(DEMO_SECONDS) --workdir $(OUT)/demo-agent
	$(BIN)/model-export demo --workdir $(OUT)/demo-export

# The package as a wheel, for a device or a cloud host: edgetwin is not on the package
# index; `pip install dist/edgetwin-*.whl` (plus '[cloud]' on the cloud side) installs it.
wheel: $(BIN)/.installed
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	@ls dist/edgetwin-*.whl

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy edgetwin_common edgetwin_contracts edge_agent model_export cloud_sync edgetwin_demo

debian-packages:
	@scripts/debian-packages.sh $(DEBIAN_PACKAGES)

pytest: $(BIN)/.installed $(TFLITE_VENV)/.installed debian-packages
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/inference.py
	$(BIN)/python bench/quantization.py
	$(BIN)/python bench/bundle_load.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/rss.py
	$(BIN)/python bench/cloud_ingest.py
	$(BIN)/python bench/swap_pause.py
	$(BIN)/python bench/closed_loop.py
	E2E_KILLS=100 $(BIN)/python -m pytest -q tests/e2e/test_exactly_once.py -k sqlite

# The device target for real: arm64 Debian root under qemu-user, install, replay, bench
# (as root; minutes the first time; docs/arm64.md). Not part of `make test`.
arm64-smoke: $(BIN)/.installed
	scripts/arm64-smoke.sh

# Rebuilds the shipped generic model from the synthetic corpus and re-signs it (docs/default-model.md).
default-model: $(BIN)/.installed
	$(BIN)/model-export default-model --out edge_agent/model/shipped/default --key-dir $(OUT)/keys

clean:
	rm -rf $(VENV) $(TFLITE_VENV) $(OUT) dist .pytest_cache .mypy_cache .ruff_cache
