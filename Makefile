# `make run` and `make test` are the README's quick start: each sets up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps run test test-all bench clean

# Headless OpenGL for MuJoCo videos (`neuroqd render`): EGL where a driver provides it, else Mesa's
# OSMesa, installed here when missing (Debian/Ubuntu, as root); the tests use both.
system-deps:
	@if command -v apt-get >/dev/null && \
	    ! $(PY) -c "import ctypes.util, sys; sys.exit(not ctypes.util.find_library('OSMesa'))"; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libosmesa6; \
	  else echo "neuroqd render needs OSMesa or EGL: sudo apt-get install libosmesa6"; fi; \
	fi
	@# The explorer's browser test drives Debian's chromium through its own chromedriver (same
	@# version by construction); nothing is downloaded by a pip package.
	@if command -v apt-get >/dev/null && \
	    ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	  else echo "the browser test needs chromium: sudo apt-get install chromium chromium-driver"; fi; \
	fi

$(STAMP): pyproject.toml | system-deps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel first: a bare `torch` requirement would pull the CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/neuroqd run me_arm

# NEUROQD_STRICT_SKIPS=1: a test skipped for a missing package fails (only "needs CUDA" may skip).
test: $(STAMP)
	NEUROQD_STRICT_SKIPS=1 $(BIN)/python -m pytest -q

test-all: $(STAMP)
	NEUROQD_STRICT_SKIPS=1 $(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python experiments/benchmarks/bench_me_arm.py

clean:
	rm -rf $(VENV) runs
