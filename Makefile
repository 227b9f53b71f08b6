# ImageBooth - the two commands a newcomer needs:
#   make run    installs (first time only) and serves the app at a printed URL
#   make test   lint and types, then the test suite twice: embedded (SQLite, no servers) and real (Postgres + Redis)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.imagebooth-installed
PYTEST_ARGS ?= -p no:cacheprovider -q
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-embedded test-real lint migrate worker clean

# torch first, from its pinned version, so the ML extras resolve against it and pip does
# not pick another build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

install:
	rm -f $(STAMP)
	$(MAKE) $(STAMP)

run: $(STAMP)
	$(BIN)/imagebooth serve --host $(HOST) --port $(PORT)

worker: $(STAMP)
	$(BIN)/imagebooth worker

migrate: $(STAMP)
	$(BIN)/imagebooth migrate

lint: $(STAMP)
	$(BIN)/ruff check app workers tests bench migrations
	$(BIN)/mypy

test: lint
	IMAGEBOOTH_TEST_BACKEND=embedded $(BIN)/python -m pytest $(PYTEST_ARGS) && \
	IMAGEBOOTH_TEST_BACKEND=real $(BIN)/python -m pytest $(PYTEST_ARGS)

test-embedded: $(STAMP)
	IMAGEBOOTH_TEST_BACKEND=embedded $(BIN)/python -m pytest $(PYTEST_ARGS)

test-real: $(STAMP)
	IMAGEBOOTH_TEST_BACKEND=real $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var build dist *.egg-info
