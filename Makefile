# Shipyard: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROJECT ?= tabular/breast_cancer
ARGS ?=
TARGET ?=
VERSION ?=
PORT ?= 3000
INPUT ?=
OUTPUT ?=
ENGINE ?=
SCHEDULER ?=
WORKERS ?= 1
TEST_WORKERS ?= 2
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := $(sort $(wildcard packages/*/pyproject.toml))

# No telemetry from any tool, here or in CI.
export BENTOML_DO_NOT_TRACK := True
export DVC_NO_ANALYTICS := 1
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

# ARGS reaches the CLI verbatim (Hydra's ${...} interpolations included), split like a shell would.
quote = '$(subst ','"'"',$(value $(1)))'
SHIPYARD := SHIPYARD_OVERRIDES=$(call quote,ARGS) $(BIN)/shipyard

.PHONY: help setup new report train config compile search dashboard status list affected promote rollout compare rollback lineage deploy serve batch monitor \
	test test-fast drills test-isolated docs bench lint gpu-check clean-venv

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PROJECT=team/name (default $(PROJECT)), ARGS=\"hydra overrides\""

$(STAMP): requirements.lock $(PACKAGES)
	@echo "setting up $(VENV) from requirements.lock"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
		$(foreach p,$(PACKAGES),-e $(dir $(p)))
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the locked environment (only when missing or stale)

train: setup ## train PROJECT: compose, validate, compile, dvc repro (ARGS= overrides)
	$(SHIPYARD) train $(PROJECT)

FROM ?=
COLUMN ?=
new: setup ## a new PROJECT from a data file: FROM=file.csv|.parquet|.db COLUMN=target (ARGS="--time-split", "--table T")
	@test -n "$(FROM)" -a -n "$(COLUMN)" || { echo "usage: make new PROJECT=team/name FROM=data.csv COLUMN=label"; exit 2; }
	$(BIN)/shipyard new $(PROJECT) --from $(call quote,FROM) --target $(call quote,COLUMN) $(ARGS)

config: setup ## print PROJECT's resolved config (ARGS= overrides)
	@$(SHIPYARD) config $(PROJECT)

compile: setup ## write pipelines/PROJECT/dvc.yaml and params.yaml
	$(SHIPYARD) compile $(PROJECT)

status: setup ## PROJECT's versions, stages, gate results, lineage, deployments
	@$(SHIPYARD) status $(PROJECT)

list: setup ## every project with its team, production version and staleness
	@$(BIN)/shipyard list

promote: setup ## put VERSION of PROJECT into production (refused unless it passed its gate)
	@test -n "$(VERSION)" || { echo "usage: make promote PROJECT=team/name VERSION=v1 (versions: make status)"; exit 2; }
	$(SHIPYARD) promote $(PROJECT) $(VERSION)

rollout: setup ## serve VERSION beside production: MODE=shadow|canary [SHARE=0.1]; END=promote|abort ends it
	@if [ -n "$(END)" ]; then $(SHIPYARD) rollout $(PROJECT) --$(END); else \
	  test -n "$(VERSION)" -a -n "$(MODE)" || { echo "usage: make rollout PROJECT=team/name VERSION=v2 MODE=shadow|canary [SHARE=0.1], or END=promote|abort"; exit 2; }; \
	  $(SHIPYARD) rollout $(PROJECT) $(VERSION) --mode $(MODE) $(if $(SHARE),--share $(SHARE)); fi

compare: setup ## judge PROJECT's rollout on its logged traffic (exit 0 pass, 4 fail, 5 too little traffic)
	$(SHIPYARD) compare $(PROJECT)

rollback: setup ## put PROJECT's previous production version back; deployments follow
	$(SHIPYARD) rollback $(PROJECT)

search: setup ## Optuna search of PROJECT (ARGS="search=<name> ...", WORKERS=N processes)
	$(SHIPYARD) search $(PROJECT) --workers $(WORKERS)

dashboard: setup ## optuna-dashboard on PROJECT's study at http://127.0.0.1:8080 (ARGS="search=<name>")
	$(SHIPYARD) dashboard $(PROJECT)

affected: setup ## projects whose config, data or code changed since BASE (a git ref, default origin/main)
	@$(BIN)/shipyard affected --base $(or $(BASE),origin/main)

report: setup ## PROJECT's HTML report (VERSION= a registered version, default the newest) under reports/
	@$(BIN)/shipyard report $(PROJECT) $(VERSION)

lineage: setup ## how VERSION of PROJECT was made
	@test -n "$(VERSION)" || { echo "usage: make lineage PROJECT=team/name VERSION=v1"; exit 2; }
	@$(BIN)/shipyard lineage $(PROJECT) $(VERSION)

deploy: setup ## build PROJECT's deployment targets from its production version (TARGET=service|batch|edge)
	$(SHIPYARD) deploy $(PROJECT) $(if $(TARGET),--target $(TARGET)) $(if $(VERSION),--version $(VERSION))

serve: setup ## serve PROJECT's built BentoML service on 127.0.0.1:PORT (make deploy TARGET=service first)
	$(BIN)/python -m shipyard.deploy.service serve deploy/$(PROJECT)/service --port $(PORT)

batch: setup ## run PROJECT's batch job: INPUT=... OUTPUT=... [ENGINE=dask] [SCHEDULER=tcp://host:8786]
	$(BIN)/shipyard batch $(PROJECT) $(if $(INPUT),--input '$(INPUT)') $(if $(OUTPUT),--output '$(OUTPUT)') \
		$(if $(ENGINE),--engine $(ENGINE)) $(if $(SCHEDULER),--scheduler '$(SCHEDULER)')

monitor: setup ## judge PROJECT's prediction log against production (SINCE= UNTIL= INPUT= LABELS=; exit 0/4 drift/5 stale)
	$(SHIPYARD) monitor $(PROJECT) $(if $(SINCE),--since '$(SINCE)') $(if $(UNTIL),--until '$(UNTIL)') \
		$(if $(INPUT),--input '$(INPUT)') $(if $(LABELS),--labels '$(LABELS)') $(if $(SCHEDULE),--schedule)

test: setup ## run every test, the slow end-to-end drills included (TEST_WORKERS processes, one test file each)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

test-fast: setup ## run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"

drills: setup ## run the reliability drills only (each names a fault and what must happen; also part of make test)
	$(BIN)/python -m pytest -m drill

bench: setup ## run the benchmarks and print their ratios (about 10 minutes)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/bench_monorepo.py
	$(BIN)/python benchmarks/bench_service.py
	$(BIN)/python benchmarks/bench_rollout.py
	$(BIN)/python benchmarks/bench_batch.py
	$(BIN)/python benchmarks/bench_edge.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_monitor.py

docs: setup ## regenerate docs/configuration.md from the config schema (CI checks it is current)
	$(BIN)/python tools/config_reference.py

lint: setup ## ruff, import-linter contracts, mypy --strict on shipyard.core, declared imports per package
	$(BIN)/ruff check packages tests benchmarks tools
	$(BIN)/lint-imports
	$(BIN)/mypy --strict -p shipyard.core
	$(BIN)/python tools/test_isolated.py --static-only

test-isolated: setup ## each package's tests in a fresh venv with only its declared dependencies (LIGHT=1: no torch)
	$(BIN)/python tools/test_isolated.py $(if $(LIGHT),--light)

gpu-check: setup ## train vision/digits on trainer=gpu and trainer=cpu, print samples/s
	$(BIN)/python benchmarks/gpu_check.py

clean-venv: ## remove .venv (the next target recreates it)
	rm -rf $(VENV)
