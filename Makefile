# Two commands on a fresh machine: `make demo` runs the main job on the embedded SQLite database,
# `make test` runs the whole test suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench serve clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/taskloom demo

serve: $(STAMP)
	$(BIN)/taskloom serve

# The whole suite: lint, types, then every test (PostgreSQL tests skip with a reason where none
# is reachable; under CI=true they fail instead).
test: lint browser
	$(BIN)/pytest -q

# The dashboard's browser tests drive Debian's chromium: under CI=true they fail without it, so CI
# installs it when missing; elsewhere they skip and say why.
browser:
	@if [ "$$CI" = "true" ] && ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
