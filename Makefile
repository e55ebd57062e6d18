# Stella — the two commands that work on a fresh machine: `make test` and `make demo`.
# Prerequisites: Python 3.11, Go (1.26+), make; Debian packages are installed by `make deps`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export STELLA_CACHE ?= $(HOME)/.cache/stella

.PHONY: help deps venv binaries crds lint test test-unit test-integration test-e2e demo demo-down bench clean

help:
	@echo "make test    - lint, type-check and run every tier (unit, integration, e2e)"
	@echo "make demo    - local control plane + operator + samples, explained as it goes"
	@echo "make demo-down - stop everything the demo started"
	@echo "make bench   - run the benchmarks under bench/ (prints figures)"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'

deps:
	bash hack/install-deps.sh

binaries:
	bash hack/build-binaries.sh all

crds: venv
	$(BIN)/python hack/gen_crds.py

lint: venv
	$(BIN)/ruff check operator tests bench hack
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: venv
	$(BIN)/pytest tests/unit -q

test-integration: venv binaries
	$(BIN)/pytest tests/integration -q

test-e2e: venv binaries
	$(BIN)/pytest tests/e2e -q

test: venv binaries lint
	$(BIN)/pytest tests -q -p no:cacheprovider

demo: venv binaries
	$(BIN)/python hack/demo.py

demo-down:
	$(BIN)/python hack/demo.py --down

bench: venv binaries
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
