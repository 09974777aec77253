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

test: venv ## Run every test (needs PostgreSQL and MariaDB/MySQL: RELATED_TEST_POSTGRES_URL, RELATED_TEST_MYSQL_URL; default the local servers)
	$(BIN)/python -m pytest

lint: venv ## ruff on the code, hadolint on the Dockerfile
	$(BIN)/ruff check related tests
	$(BIN)/ruff format --check related tests
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile

related: venv ## Run the job against $$DATABASE_URL
	$(BIN)/related run

# The baseline sparse_dot_topn is a benchmark need only: the [bench] extra, not [dev].
# Bigger sizes: make bench BENCH_ARGS='--sizes 30000 100000' (see bench/README.md).
bench: venv ## Benchmark 3k and 10k entries: stages x sizes, baselines measured alongside
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_run.py $(BENCH_ARGS)

clean: ## Remove the venv, caches and the demo database
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache related-demo.db related-demo.db.related-*.lock

# ---- The image. Both targets need a Docker engine; the tests never do (tests/test_shipping.py
# installs the wheel the way the Dockerfile does, in a venv).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' related/__init__.py)
IMAGE ?= related
.PHONY: docker-build docker-run

docker-build: ## Build the image related:VERSION and related:latest
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

# DATABASE_URL and every RELATED_* variable set in the environment or on make's command line go
# through by name: `-e NAME` copies the value, so no password shows in the command make echoes.
# ARGS replaces the image's default command `run`: make docker-run ARGS='run --dry-run'.
# SQLite is a file on the host: mount its directory at /work (the image's working directory)
# and run as your own uid, so the job can write the database and its journal there:
#   make docker-run DATABASE_URL=sqlite:///blog.db \
#     DOCKER_RUN_FLAGS="-v $PWD:/work --user $(id -u):$(id -g)"
# RELATED_CONFIG names a path inside the container: mount the file there as well.
docker-run: ## Run the image once against DATABASE_URL, passing RELATED_* through
	docker run --rm -e DATABASE_URL $(foreach v,$(sort $(filter RELATED_%,$(.VARIABLES))),-e $(v)) $(DOCKER_RUN_FLAGS) $(IMAGE):$(VERSION) $(ARGS)
