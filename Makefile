# Developer commands. Everything is configured by environment variables (see .env.example),
# e.g. `PORT=8001 OCPI_DATA_DIR=var/a make run`. The commands use .venv/bin explicitly.

VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
# Extra pytest arguments: make test PYTEST_ARGS="-k credentials -x"
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: run test install venv services fmt lint typecheck check ci web worker beat bench bench-pull bench-fanout help

## run        set up (.venv, migrate, static files, admin user) and start web + worker + beat
run:
	scripts/run.sh

## test       install dev requirements, start PostgreSQL and Redis if needed, run pytest
test: install services
	$(BIN)/pytest $(PYTEST_ARGS)

## install    create .venv and install requirements-dev.txt (again when a requirements file changes)
install:
	scripts/bootstrap.sh dev

# Runtime requirements only (enough for web, worker and beat).
venv:
	scripts/bootstrap.sh run

## services   start PostgreSQL and Redis on 127.0.0.1 if installed and not running
services:
	scripts/services.sh

## fmt        format the code and apply the automatic lint fixes
fmt: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## lint       check formatting and lint rules
lint: install
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

## typecheck  mypy (strict) on the project packages
typecheck: install
	$(BIN)/mypy ocpi_platform credentials hubclientinfo kit locations outbox tariffs tokens cockpit journal

## check      Django system checks and missing migrations
check: install
	$(PYTHON) manage.py check
	$(PYTHON) manage.py makemigrations --check --dry-run

## ci         lint, typecheck, check and test
ci: lint typecheck check test

## web        only the gunicorn web server (after `make run` has set up the data folder once)
web: venv
	$(BIN)/gunicorn ocpi_platform.wsgi --bind 127.0.0.1:$${PORT:-8000} --workers 2 --threads 4 --access-logfile - \
		--control-socket $${OCPI_DATA_DIR:-var}/gunicorn.ctl

## worker     only the Celery worker
worker: venv
	$(BIN)/celery -A ocpi_platform worker --loglevel INFO --concurrency 2

## beat       only Celery beat
beat: venv
	$(BIN)/celery -A ocpi_platform beat --loglevel INFO

## bench      benchmark the locations list and status PATCHes under gunicorn (BENCH_ARGS="--keep-db")
bench: install services
	$(PYTHON) -m bench.locations $(BENCH_ARGS)

## bench-pull a full pull of 10,000 locations from a partner on loopback (BENCH_ARGS="--help")
bench-pull: install services
	$(PYTHON) -m bench.pull $(BENCH_ARGS)

## bench-fanout  benchmark the push: fan-out to 100 partners, sustained deliveries/s, task count
bench-fanout: install services
	$(PYTHON) -m bench.fanout $(BENCH_ARGS)

## help       list the targets
help:
	@sed -n 's/^## /make /p' $(MAKEFILE_LIST)
