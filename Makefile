PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5672
DATA_DIR ?= data

.PHONY: run test lint unit integration conformance bench clean browser

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

# The console's browser tests need chromium and chromedriver: installed here when they are
# missing and this runs as root with apt-get; otherwise those tests skip. Never fails.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver for the console's browser tests"; \
	  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 \
	         && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
	    || echo "could not install chromium: the console's browser tests will skip"; \
	else \
	  echo "chromium or chromedriver not found: the console's browser tests will skip"; \
	fi

test: lint browser
	$(BIN)/pytest -q tests conformance

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.spike

clean:
	rm -rf $(VENV) .pytest_cache
