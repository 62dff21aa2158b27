# GaitGraph: `make train` and `make test` set everything up themselves (venv + pinned installs).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := test,postgres,slurm,dev,dashboard
UV_VERSION := 0.13.9
PIP = $(BIN)/pip --quiet --disable-pip-version-check
# This machine's pip config lists extra local indexes that may not exist: only those warnings are hidden.
PIP_NOISE := is ignored: it is neither a file nor a directory
# pip's find-links (its config or $$PIP_FIND_LINKS), passed on to uv.
UV_FIND_LINKS = $(addprefix --find-links ,$(sort $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null; echo $${PIP_FIND_LINKS:-})))
# Extra Hydra overrides, e.g. `make train ARGS="trainer.epochs=5"`.
ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install train test test-fast lint format clean-cache sweep dashboard reproduce-casia-b reproduce-oumvlp-openpose \
	reproduce-oumvlp-alphapose reproduce-grew reproduce-gait3d check-casia-b-data check-oumvlp-openpose-data \
	check-oumvlp-alphapose-data check-grew-data check-gait3d-data

# Where the paper datasets live (passed to training as paths.data_dir), e.g. `make reproduce-casia-b DATA_DIR=/data`.
DATA_DIR ?= data
DATA := $(abspath $(DATA_DIR))
# `make sweep` writes here (one folder per invocation, fixed once so the compare step finds it).
SWEEP_DIR := $(or $(SWEEP_DIR),$(CURDIR)/outputs/multirun/sweep_small-$(shell date +%Y-%m-%d_%H-%M-%S))

help: ## List the targets with a one-line description
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-26s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the package editable with its exact pins (idempotent)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# uv resolves, downloads and unpacks in parallel: the same pinned set in about 9 s where pip takes about 40 s.
	@# It does not read pip's configuration, so it is handed pip's find-links (where this machine keeps the CPU
	@# build of torch); if uv cannot be installed or fails, pip installs the same set (docs/pitfalls.md).
	$(PIP) install --no-compile uv==$(UV_VERSION) 2>&1 | { grep -v "$(PIP_NOISE)" || true; } || echo "uv not installed: pip installs"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-compile $(UV_FIND_LINKS) -e ".[$(EXTRAS)]" \
		|| $(PIP) install --no-compile -e ".[$(EXTRAS)]" 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@# Byte-compiling while installing would use one core (~50 CPU-s here); compileall spreads the work over every
	@# core, and leaves out the packages' own test suites (a fifth of the source; nothing imports them). Like pip,
	@# it skips what this Python cannot compile (e.g. a torch file in Python 3.12 syntax).
	$(BIN)/python -m compileall -q -j 0 -x '/tests/' $(VENV)/lib >/dev/null || true
	$(BIN)/pip check
	touch $(STAMP)

train: install ## Train ResGCN on the embedded PsyMo-10 subset and print the per-view rank-1 table
	$(BIN)/python -m gaitgraph.train $(ARGS)

# The suite runs on one process per core, at most 4: a test file stays on one process, and the longest files start
# first (tests/conftest.py LONGEST_FIRST, kept in that order by --no-loadscope-reorder), so none is left running
# alone at the end (on 2 cores: 97 % busy; a third process only added contention). The session's one trained run and
# pose cache are shared by all of them. The kernel- and clock-dependent `system` tests run afterwards on their own,
# so no other test's load skews them. `make test` prints the 25 slowest tests.
XDIST := -n auto --maxprocesses=4 --dist loadfile --no-loadscope-reorder
# The second pass collects only the files that mark `system` tests (any file that says pytest.mark.system): importing
# every test module again cost ~10 s. Paths or options in PYTEST_ARGS are passed on instead.
SYSTEM_FILES = $(if $(PYTEST_ARGS),,$(shell grep -rlE 'pytest\.mark\.system' tests --include='*.py'))

test: install lint ## Lint, then every test (slow end-to-end and system tests included), the 25 slowest listed
	$(BIN)/python -m pytest -q $(XDIST) -m "not system" --durations=25 $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m system $(PYTEST_ARGS) $(SYSTEM_FILES)

test-fast: install ## The inner loop: unit tests and in-process debug=fdr-sized runs (not `slow`, not `system`)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not system" $(PYTEST_ARGS)

LINTED := gaitgraph hydra_plugins tests benchmarks scripts docs

lint: install ## ruff (configured in pyproject.toml): the linter, and the formatter in check mode
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: install ## Apply ruff's fixes and formatting (what `make lint` checks)
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

clean-cache: ## Delete the HDF5 pose caches under outputs/cache
	rm -rf outputs/cache

sweep: install ## A few-minute Optuna sweep on PsyMo-10 (hparams_search=optuna_small), compare_runs.py and seed_check.py on it
	$(BIN)/python -m gaitgraph.train -m hparams_search=optuna_small hydra.sweep.dir=$(SWEEP_DIR) $(ARGS)
	$(BIN)/python scripts/compare_runs.py $(SWEEP_DIR)
	$(BIN)/python scripts/seed_check.py $(SWEEP_DIR)

# `make dashboard SWEEP_DIR=outputs/multirun/<date>/<time>`: the sweep's Optuna study in the browser (127.0.0.1 only).
DASHBOARD_PORT ?= 8080

dashboard: install ## Serve optuna-dashboard for the study of SWEEP_DIR (a sweep folder) on http://127.0.0.1:DASHBOARD_PORT
	@test "$(origin SWEEP_DIR)" != file || { echo "error: name the sweep: make dashboard SWEEP_DIR=outputs/multirun/<date>/<time>" >&2; exit 2; }
	$(BIN)/python scripts/dashboard.py $(SWEEP_DIR) --port $(DASHBOARD_PORT)

# The dataset checks run before `install` and training, so a missing dataset stops the target at once.
check-casia-b-data:
	@test -f "$(DATA)/casia-b/casia-b_pose_coco.csv" || { \
	  echo "error: CASIA-B poses not found: $(DATA)/casia-b/casia-b_pose_coco.csv" >&2; \
	  echo "  get data.zip from the GaitGraph release v0.1 (https://github.com/tteepe/GaitGraph/releases)," >&2; \
	  echo "  unpack casia-b_pose_coco.csv into $(DATA)/casia-b/ (or point DATA_DIR=... at its parent)" >&2; \
	  exit 1; }

# $(call check-oumvlp,openpose|alphapose): the release folder and ID_list.csv must be there.
check-oumvlp = @test -d "$(DATA)/oumvlp/$(1)" -a -f "$(DATA)/oumvlp/ID_list.csv" || { \
	  echo "error: OUMVLP-Pose ($(1)) not found: need $(DATA)/oumvlp/$(1)/<subject>/<view>_<seq>/*.json" >&2; \
	  echo "  and $(DATA)/oumvlp/ID_list.csv. OUMVLP-Pose is not redistributable: request it from its owners" >&2; \
	  echo "  (OU-ISIR Gait Database, Osaka University), unpack it there (or point DATA_DIR=... at its parent)" >&2; \
	  exit 1; }

check-oumvlp-openpose-data:
	$(call check-oumvlp,openpose)

check-oumvlp-alphapose-data:
	$(call check-oumvlp,alphapose)

# $(call check-pkl,<folder>,<split file>,<name>,<where to get it>): the pose pickles' folder and its split file.
check-pkl = @test -d "$(DATA)/$(1)" -a -f "$(DATA)/$(1)/$(2)" || { \
	  echo "error: $(3) poses not found: need $(DATA)/$(1)/ (FastPoseGait's pose pickles) and $(DATA)/$(1)/$(2)" >&2; \
	  echo "  $(3) is released on request: $(4)" >&2; \
	  echo "  convert its 2D poses with FastPoseGait's scripts (docs/process_dataset.md there), copy FastPoseGait's" >&2; \
	  echo "  datasets/$(5)/$(2) beside them (or point DATA_DIR=... at their parent)" >&2; \
	  exit 1; }

check-grew-data:
	$(call check-pkl,grew,GREW.json,GREW,https://www.grew-benchmark.org/download.html (rearrange_GREW.py + pretreatment_grew_pose.py),GREW)

check-gait3d-data:
	$(call check-pkl,gait3d,Gait3D.json,Gait3D,https://gait3d.github.io/#dataset (pretreatment_gait3d_pose.py),Gait3D)

reproduce-casia-b: check-casia-b-data install ## GaitGraph2 on CASIA-B, paper recipe (200 epochs, TTA); DATA_DIR=data
	$(BIN)/python -m gaitgraph.train experiment=gaitgraph2_casia_b tta=true paths.data_dir=$(DATA) $(ARGS)

reproduce-oumvlp-openpose: check-oumvlp-openpose-data install ## GaitGraph2 on OUMVLP-Pose, OpenPose (750 ep, SWA, TTA)
	$(BIN)/python -m gaitgraph.train experiment=gaitgraph2_oumvlp_openpose tta=true paths.data_dir=$(DATA) $(ARGS)

reproduce-oumvlp-alphapose: check-oumvlp-alphapose-data install ## GaitGraph2 on OUMVLP-Pose, AlphaPose (750 ep, SWA, TTA)
	$(BIN)/python -m gaitgraph.train experiment=gaitgraph2_oumvlp_alphapose tta=true paths.data_dir=$(DATA) $(ARGS)

reproduce-grew: check-grew-data install ## GaitGraph2 on GREW, FastPoseGait's recipe (n51-r4, 373 ep, TTA); DATA_DIR=data
	$(BIN)/python -m gaitgraph.train experiment=gaitgraph2_grew tta=true paths.data_dir=$(DATA) $(ARGS)

reproduce-gait3d: check-gait3d-data install ## GaitGraph2 on Gait3D, FastPoseGait's recipe (n21-r8, 80 ep, TTA); DATA_DIR=data
	$(BIN)/python -m gaitgraph.train experiment=gaitgraph2_gait3d tta=true paths.data_dir=$(DATA) $(ARGS)
