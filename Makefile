# Stella — the two commands that work on a fresh machine: `make test` and `make demo`.
# Prerequisites: Python 3.11, Go (1.26+), make. Each of the two sets up what is missing
# first, in this order: deps (Debian packages, a quick look when present), venv
# (re-installed only when pyproject.toml or constraints.txt change), binaries (built once
# into $(STELLA_CACHE)).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export STELLA_CACHE ?= $(HOME)/.cache/stella

.PHONY: help deps venv binaries crds lint test test-unit test-integration test-e2e demo demo-down bench clean image image-check registry-down

help:
	@echo "make test    - lint, type-check and run every tier (unit, integration, e2e)"
	@echo "make demo    - local control plane + operator + samples, explained as it goes"
	@echo "make demo-down - stop everything the demo started"
	@echo "make bench   - run the benchmarks under bench/ (prints figures)"
	@echo "make image   - the operator's OCI image (no daemon, reproducible), pushed by digest"
	@echo "make image-check - run the built image's stella --version under runc"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The editable install follows the source by itself; only new dependencies or entry
# points (pyproject.toml, constraints.txt) need pip again.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

deps:
	@PY=$(PY) bash hack/install-deps.sh

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

test-integration: deps venv binaries
	$(BIN)/pytest tests/integration -q

test-e2e: deps venv binaries
	$(BIN)/pytest tests/e2e -q

test: deps venv binaries lint
	$(BIN)/pytest tests -q -p no:cacheprovider --durations=40

demo: deps venv binaries
	$(BIN)/python hack/demo.py

demo-down:
	$(BIN)/python hack/demo.py --down

bench: deps venv binaries
	@mkdir -p .local/bench; out=$$PWD/.local/bench/summary-$$(date -u +%Y%m%dT%H%M%SZ).jsonl; \
	for b in bench/bench_*.py; do echo "== $$b"; STELLA_BENCH_SUMMARY=$$out $(BIN)/python $$b || exit 1; done; \
	$(BIN)/python bench/report.py $$out

# The operator's image: built from the commit (HEAD) with Debian packages and wheels, no
# container daemon; pushed to STELLA_IMAGE_REGISTRY (host:port) or a local registry on
# 127.0.0.1:5000; prints the pinned reference. See docs/install.md.
image: venv
	@bash hack/install-deps.sh image
	@$(BIN)/python hack/image/build.py

image-check:
	@bash hack/install-deps.sh image
	bash hack/image/run-check.sh

registry-down:
	@$(BIN)/python -c 'import sys; sys.path.insert(0, "hack"); from pathlib import Path; from devenv.proc import kill_pidfile; kill_pidfile(Path(".local/registry/registry.pid"))'

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
