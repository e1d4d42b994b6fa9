# The two commands of the README. Everything else is a helper for them.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck lock services browser clean

$(STAMP): requirements.lock
	$(PYTHON) -c 'import sys; sys.exit("renderq needs Python 3.11+") if sys.version_info < (3, 11) else None'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

## make demo: run the whole pipeline locally (Redis, emulator, worker, scheduler) and show it.
demo: $(STAMP)
	$(VENV)/bin/python -m devtools.demo

## make test: the whole suite against real Redis, SQLite, PostgreSQL and worker processes.
## Two pytest-xdist workers (each test is isolated by its own Redis namespace, database and
## ports): most tests wait on processes, so two at once halve the time on two cores; the
## timing bounds of the tests are set for that load. TEST_WORKERS=0 runs them one by one.
TEST_WORKERS ?= 2
test: $(STAMP) services browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	RENDERQ_REQUIRE_POSTGRES=1 RENDERQ_REQUIRE_BROWSER=1 $(VENV)/bin/python -m pytest -q \
		-n $(TEST_WORKERS)

services:
	@bash devtools/ensure_services.sh

## the system Chromium for the console's browser tests (installed as root if missing)
browser:
	@bash devtools/ensure_browser.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## make lock: re-pin every dependency after editing pyproject.toml.
lock: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url \
		--no-emit-find-links --no-emit-trusted-host -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
