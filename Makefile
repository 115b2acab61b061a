# The two commands a person needs: `make pipeline` and `make test`. Both set themselves up.
# Caches that make repeated runs fast: pip (~/.cache/pip), Go modules and builds
# (~/go/pkg/mod, ~/.cache/go-build), Spark jars and the FerretDB binary
# (<state>/cache, default .lakehouse/cache); the S3A jars, SeaweedFS and Superset
# (~/.cache/lakehouse, shared by every clone).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_STAMP := $(VENV)/.installed-dagster
LAKEHOUSE := $(BIN)/lakehouse
PYTEST_ARGS ?=
PIPELINE_ARGS ?=
BENCH_ARGS ?=
# What dashboards/requirements.lock is resolved from (Superset's own virtualenv, not .venv).
DASHBOARD_REQUIREMENTS := apache-superset==6.1.0 flask-caching==2.3.1 rich cachetools pyhive[hive_pure_sasl]
DASHBOARD_LOCK_VENV := .lakehouse/dashboard-lock-venv

.DEFAULT_GOAL := help
.PHONY: help setup dagster-extra object-store orchestrator browser up down status test test-unit pipeline bench lint lint-deploy format lock dagster-lock clean dashboard dashboard-down dashboard-lock

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(DAGSTER_STAMP): $(STAMP) requirements-dagster.lock
	$(BIN)/pip install --quiet -r requirements-dagster.lock
	@touch $@

dagster-extra: $(DAGSTER_STAMP) ## install the optional Dagster code location's packages (requirements-dagster.lock) into .venv

setup: $(STAMP) ## create .venv, install pinned deps, resolve Spark jars, build FerretDB (idempotent)
	@$(LAKEHOUSE) setup

object-store: $(STAMP) ## for an s3a:// warehouse: the S3A jars and SeaweedFS (built once into ~/.cache/lakehouse, ~4 min)
	@$(LAKEHOUSE) setup --object-store

up: setup ## start PostgreSQL, FerretDB and the Spark Thrift Server
	@$(LAKEHOUSE) up

down: ## stop the local services (data stays)
	@$(LAKEHOUSE) down

status: ## what runs where, pids and logs
	@$(LAKEHOUSE) status

pipeline: setup ## run the whole pipeline end to end; leaves the Thrift endpoint up
	@$(LAKEHOUSE) pipeline $(PIPELINE_ARGS)

dashboard: setup ## Superset on 127.0.0.1:8088 with the dashboards of dashboards/ (installed once; prints URL and login)
	@$(LAKEHOUSE) dashboard up

orchestrator: dagster-extra ## Dagster's UI and daemon on 127.0.0.1:3000 running the pipeline's assets (stop: lakehouse down)
	@$(LAKEHOUSE) dagster up

dashboard-down: ## stop Superset (its metadata and the dashboards stay)
	@$(LAKEHOUSE) dashboard down

dashboard-lock: ## re-resolve dashboards/requirements.lock (Superset's virtualenv) from DASHBOARD_REQUIREMENTS
	rm -rf $(DASHBOARD_LOCK_VENV)
	$(PYTHON) -m venv $(DASHBOARD_LOCK_VENV)
	$(DASHBOARD_LOCK_VENV)/bin/pip install --quiet '$(subst $() ,' ',$(DASHBOARD_REQUIREMENTS))'
	(echo "# Apache Superset's own virtualenv (lakehouse dashboard up), apart from the project's: a pip freeze of"; \
	  echo "# $(DASHBOARD_REQUIREMENTS) on Python 3.11."; \
	  echo "# Installed with --no-deps; regenerate with: make dashboard-lock"; \
	  $(DASHBOARD_LOCK_VENV)/bin/pip freeze) > dashboards/requirements.lock
	rm -rf $(DASHBOARD_LOCK_VENV)

bench: setup ## benchmark the pipeline at medium scale (isolated stack; JSON in .lakehouse/reports)
	@$(LAKEHOUSE) bench $(BENCH_ARGS)

browser: ## headless Chromium for the dashboards' browser test (Debian's chromium and chromium-driver; root or sudo)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	  elif command -v sudo >/dev/null; then sudo -n apt-get update -qq && sudo -n apt-get install -y -qq chromium chromium-driver; \
	  else false; fi; } || echo "make browser: install chromium and chromium-driver (apt-get install chromium chromium-driver): the dashboards' browser test needs them"

test: setup dagster-extra object-store browser ## the whole suite: unit, integration (two shards) and e2e side by side (any failure fails the run)
	$(BIN)/python tests/run_layers.py $(PYTEST_ARGS)

test-unit: setup ## only the tests that need no live service (plain local Spark, no network)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: setup ## ruff check and format check; sqlfluff on the dbt project (dbt/.sqlfluff)
	$(BIN)/ruff check lakehouse jobs tests docker expectations
	$(BIN)/ruff format --check lakehouse jobs tests docker expectations
	cd dbt && ../$(BIN)/sqlfluff lint models tests snapshots analyses

lint-deploy: setup ## hadolint the Dockerfile, shellcheck the entry point, validate docker-compose.yml
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck docker/entrypoint.sh
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

format: setup ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix lakehouse jobs tests docker
	$(BIN)/ruff format lakehouse jobs tests docker

lock: $(BIN)/python ## re-resolve requirements.lock from pyproject.toml (without the dagster extra's pins)
	$(BIN)/pip install --quiet -e '.[dev]'
	(echo "# Pinned dependency set used by make setup and CI (regenerate with: make lock)."; \
	  $(BIN)/pip freeze --exclude-editable | grep -vxF -f requirements-dagster.lock) > requirements.lock

dagster-lock: $(STAMP) ## re-resolve requirements-dagster.lock: what the dagster extra adds to requirements.lock
	$(BIN)/pip install --quiet -e '.[dagster]'
	sed 's/_/-/g' requirements.lock > .dagster-lock-base  # pip spells some names with _ and some with -
	(sed -n '/^#/p' requirements-dagster.lock; \
	  $(BIN)/pip freeze --exclude-editable | sed 's/_/-/g' | grep -vixF -f .dagster-lock-base) > requirements-dagster.lock.new
	rm .dagster-lock-base && mv requirements-dagster.lock.new requirements-dagster.lock

clean: down ## remove the state directory (all local data!) and the virtualenv
	rm -rf .lakehouse $(VENV)
