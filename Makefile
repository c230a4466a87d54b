# Two commands matter: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run migrate test test-slow lint typecheck bench token schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/crm run

migrate: $(STAMP)
	$(BIN)/crm migrate

test: $(STAMP)
	$(BIN)/pytest -m "not slow"

# The long fault-injection scenarios (minutes each).
test-slow: $(STAMP)
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check libs services testing tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run

token: $(STAMP)
	@$(BIN)/crm token $(ARGS)

schemas: $(STAMP)
	$(BIN)/crm schemas docs/events

clean:
	rm -rf $(VENV) var
