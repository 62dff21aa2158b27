# GaitGraph: `make train` and `make test` set everything up themselves (venv + pinned installs).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Extra Hydra overrides, e.g. `make train ARGS="trainer.epochs=5"`.
ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install train test clean-cache

help: ## List the targets with a one-line description
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-26s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the package editable with its exact pins (idempotent)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# This machine's pip config lists extra local indexes that may not exist: hide only those warnings.
	$(BIN)/pip install --quiet --disable-pip-version-check -e . 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	$(BIN)/pip check
	touch $(STAMP)

train: install ## Train ResGCN on the embedded PsyMo-10 subset and print the per-view rank-1 table
	$(BIN)/python -m gaitgraph.train $(ARGS)

test: install ## Run the full test suite (slow end-to-end tests included)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-cache: ## Delete the HDF5 pose caches under outputs/cache
	rm -rf outputs/cache
