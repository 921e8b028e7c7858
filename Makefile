PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5672
DATA_DIR ?= data

.PHONY: run test lint unit integration conformance bench clean

$(BIN)/python:
	$(shell command -v $(PY) || command -v python3) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[fast]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[fast,test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/amqpbroker serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check amqpbroker tests conformance bench
	$(BIN)/lint-imports
	$(BIN)/mypy amqpbroker

unit: $(VENV)/.test-installed
	$(BIN)/pytest -q tests/unit

integration: $(VENV)/.test-installed
	$(BIN)/pytest -q tests/integration

conformance: $(VENV)/.test-installed
	$(BIN)/pytest -q conformance

test: lint
	$(BIN)/pytest -q tests conformance

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.spike

clean:
	rm -rf $(VENV) .pytest_cache
