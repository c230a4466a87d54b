# Two commands matter: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` installs what the services need; the suite's and the benchmarks' tools
# (Playwright, schemathesis, mypy, lifetimes with SciPy and pandas) come with `make
# test`, `make lint` and `make bench` only.
SERVING := $(VENV)/.serving
STAMP := $(VENV)/.installed

.PHONY: run migrate test test-slow lint typecheck bench token schemas screenshots clean install

$(SERVING): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(SERVING)

$(STAMP): $(SERVING)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(SERVING)
	$(BIN)/crm run

migrate: $(SERVING)
	$(BIN)/crm migrate

# Four workers: the suite mostly waits (group joins, services starting), so four share
# two cores well; a file, and each database's platform tests, keep to one worker
# (conftest.py, docs/decisions/0085). TEST_WORKERS=0 runs it in one process. The
# slowest tests are listed at the end, to see where the suite's time goes.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS) --durations=15

# The long fault-injection scenarios (minutes each).
test-slow: $(STAMP)
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check libs services testing tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run

token: $(SERVING)
	@$(BIN)/crm token $(ARGS)

schemas: $(SERVING)
	$(BIN)/crm schemas docs/events

# The web console's pages, in a real browser against a running platform (needs Chromium:
# apt-get install chromium), into docs/screenshots/.
screenshots: $(STAMP)
	CONSOLE_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/test_console.py -k screenshots -q

clean:
	rm -rf $(VENV) var
