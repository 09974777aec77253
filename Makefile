# The two commands: `make demo` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint related bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv and install related with its test and dev extras

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: venv ## Build the sample SQLite blog, run the job and print related entries
	$(BIN)/related demo

test: venv ## Run every test (needs PostgreSQL: RELATED_TEST_POSTGRES_URL, default local server)
	$(BIN)/python -m pytest

lint: venv ## ruff on the code
	$(BIN)/ruff check related tests
	$(BIN)/ruff format --check related tests

related: venv ## Run the job against $$DATABASE_URL
	$(BIN)/related run

clean: ## Remove the venv, caches and the demo database
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache related-demo.db
