# The two commands of the README: `make run` and `make test`. Everything else is a helper.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format deps deps-test services-stop clean

run: deps
	$(VENV)/bin/changzhi up

test: deps-test lint
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy gis_core realtime layers apps web sensors

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

deps:
	@bash apps/platform/bootstrap.sh run

deps-test:
	@bash apps/platform/bootstrap.sh test

services-stop:
	$(VENV)/bin/changzhi services stop

clean: services-stop
	rm -rf var
