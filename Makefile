# parkcarbon — every target installs what it needs first (scripts/bootstrap.sh).
.DEFAULT_GOAL := help
VENV := .venv/bin
PACKAGES := parkcarbon park scoring collectors simulators pipeline reports ledger dashboards dags portal
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help bootstrap demo test unit lint types all services-up services-down clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: ## Install mosquitto, influxdb (apt-get) and the .venv if missing
	@scripts/bootstrap.sh

demo: bootstrap ## The main job: simulated park -> MQTT -> collector -> InfluxDB -> monthly DAG -> credits
	$(VENV)/parkcarbon demo

test: bootstrap ## What CI runs: ruff check, format check, mypy strict, import contracts, all tests
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy $(PACKAGES)
	$(VENV)/lint-imports --no-cache
	$(VENV)/python -m pytest -q

unit: bootstrap ## Only the tests that need no service (no Mosquitto, influxd, PostgreSQL or Airflow)
	$(VENV)/python -m pytest -q -m "not services and not airflow and not postgres"

lint: bootstrap ## ruff check and format check
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

types: bootstrap ## mypy strict
	$(VENV)/mypy $(PACKAGES)

all: test ## What a careful commit runs: the same as CI

services-up: bootstrap ## Start the local Mosquitto and influxd under .run/
	$(VENV)/parkcarbon services up

services-down: ## Stop exactly what services-up started
	$(VENV)/parkcarbon services down

clean: services-down ## Remove the run directory and caches (keeps .venv)
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
