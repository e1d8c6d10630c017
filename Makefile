# dojang — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LINT_DIRS := $(wildcard src tests bench examples deploy)

.PHONY: run test lint typecheck pytest bench clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Serve dojang on the embedded default (SQLite in ./.dojang) with a demo user.
run: $(STAMP)
	$(BIN)/dojang serve --demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/dojang

pytest: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered -q $(PYTEST_ARGS)

## Lint, type-check, then the whole test suite (real SQLite, PostgreSQL, Redis, Chromium).
test: lint typecheck pytest

## Benchmarks (slow; results land in bench/results/).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
