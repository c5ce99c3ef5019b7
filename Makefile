# hwd: make venv | make run | make test | make bench | make protos
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GRPCJS := tests/conformance/grpcjs

.PHONY: venv run test bench protos

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "hwd needs Python >= 3.11 (found: $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get install -y -qq python3-venv; \
	  else echo "Python's venv module is missing: sudo apt-get install python3-venv"; exit 1; fi; }
	@# The simulated kiosk links its serial ports with socat; mbpoll is a conformance peer.
	@command -v socat >/dev/null && command -v mbpoll >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -qq socat mbpoll >/dev/null || { apt-get update -qq && apt-get install -y -qq socat mbpoll >/dev/null; }; \
	  else echo "the simulated kiosk needs socat (and the tests mbpoll): sudo apt-get install socat mbpoll"; \
	    command -v socat >/dev/null || exit 1; fi; }
	@# USB hotplug tests run under umockdev, driven from the system Python's GObject bindings; adb and
	@# libimobiledevice's tools are the Android and iPhone peers of the tests and benchmarks. Without
	@# them those tests skip.
	@command -v umockdev-wrapper >/dev/null && command -v adb >/dev/null && command -v ideviceinfo >/dev/null && \
	  /usr/bin/python3 -c 'import gi; gi.require_version("UMockdev", "1.0")' 2>/dev/null || { \
	  pkgs="umockdev gir1.2-umockdev-1.0 python3-gi adb libimobiledevice-utils"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -qq $$pkgs >/dev/null || { apt-get update -qq && apt-get install -y -qq $$pkgs >/dev/null; }; \
	  else echo "the USB hotplug tests and the phone benchmark need: sudo apt-get install $$pkgs"; fi; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# The independent gRPC client of the conformance tests (grpc-js); skipped when npm is missing.
$(GRPCJS)/node_modules/.installed: $(GRPCJS)/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd $(GRPCJS) && npm ci --ignore-scripts --no-audit --no-fund --silent && touch node_modules/.installed; \
	else echo "npm not found: the grpc-js conformance tests will be skipped"; fi

run: $(STAMP)
	$(VENV)/bin/hwd serve --simulated $(ARGS)

test: $(STAMP) $(GRPCJS)/node_modules/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q tests/unit/test_protos_fresh.py
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

protos: $(STAMP)
	$(PY) protos/generate.py
