# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PORT ?= 8000
BIN := $(VENV)/bin

# The first Python >= 3.11 on the PATH.
PYTHON := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: run serve test bench check-python install install-test chromium s3rver redis clean

check-python:
	@test -n "$(PYTHON)" || { echo "Seedream Studio needs Python 3.11 or newer on the PATH." >&2; exit 1; }

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make a second `make run` skip installs that are already done.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-test.txt
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py welcome --url http://127.0.0.1:$(PORT)
	exec $(BIN)/honcho start -f Procfile --port $(PORT)

# Production on one machine (docs/DEPLOY.md): granian serves the WSGI app with WEB_WORKERS
# processes of WEB_THREADS threads on BIND:PORT (behind a reverse proxy), beside WORKERS background
# workers; every setting comes from the environment (or .env). It refuses to start while
# `check --deploy` reports anything (no https STUDIO_PUBLIC_URL, a weak SECRET_KEY, …).
BIND ?= 127.0.0.1
WEB_WORKERS ?= 2
WEB_THREADS ?= 8
WORKERS ?= 1
serve: export BIND := $(BIND)
serve: export WEB_WORKERS := $(WEB_WORKERS)
serve: export WEB_THREADS := $(WEB_THREADS)
serve: install
	$(BIN)/python manage.py check --deploy --fail-level WARNING
	$(BIN)/python manage.py migrate --noinput
	exec $(BIN)/honcho start -f Procfile.production --port $(PORT) --concurrency worker=$(WORKERS)

# Browser tests use Debian's Chromium; we never download a browser of Playwright's own.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "Browser tests need /usr/bin/chromium (apt-get install chromium)." >&2; exit 1; fi; fi

# The S3 storage tests run against npm's s3rver, installed from tests/s3's lock file. Without
# npm they are skipped (and say why).
S3RVER_STAMP := tests/s3/node_modules/.installed

$(S3RVER_STAMP): tests/s3/package.json tests/s3/package-lock.json
	npm ci --prefix tests/s3 --no-audit --no-fund --loglevel=error
	@touch $@

s3rver:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory -s $(S3RVER_STAMP); \
	else echo "npm not found: the S3 storage tests will be skipped (apt-get install nodejs npm)." >&2; fi

# The Redis tests start a private redis-server (tests/redis_server.py); Debian's package brings
# it. Without it (and not root) they use REDIS_TEST_URL or 127.0.0.1:6379, or skip and say why.
redis:
	@if ! command -v redis-server >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null || \
		echo "redis-server could not be installed: the Redis tests will use 127.0.0.1:6379 or skip." >&2; fi

# The import contracts (pyproject.toml, [tool.importlinter]) run first: a broken layer fails in
# seconds, naming the import chain that breaks it. Tests sign with a fixed key, so the PostgreSQL
# run (which refuses to start without one) and the worker processes the tests start all agree.
test: export SECRET_KEY ?= test-only-secret-key-never-used-in-production-0123456789
test: install-test chromium s3rver redis
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n auto --maxprocesses 4

bench: install-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache tests/s3/node_modules
