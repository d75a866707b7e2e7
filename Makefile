# `make run` and `make test` are the README's quick start: each sets up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-all bench clean

$(STAMP): pyproject.toml
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
