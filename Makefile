# StreamGate: `make run` starts the whole stack, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PORT ?= 8000
export PATH := $(BIN):$(PATH)

.PHONY: run test lint format bench clean contracts

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "StreamGate needs Python 3.11 or newer as '$(PYTHON)' (set PYTHON=...)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.base-installed: $(BIN)/python requirements/base.txt
	$(BIN)/pip install --quiet -r requirements/base.txt
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed requirements/dev.txt
	$(BIN)/pip install --quiet -r requirements/dev.txt
	@touch $@

# JavaScript tools the suite cross-checks against (solc-js, OpenZeppelin, Hardhat, the
# reference IPFS importer); `npm ci` installs exactly what package-lock.json pins.
contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The web UI's browser packages (tus-js-client, hls.js, js-sha3) from npm, copied into
# static/dist/ where Django's static files find them; nothing is fetched from a CDN at run time.
static/dist/.built: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/dist
	cp node_modules/tus-js-client/dist/tus.min.js node_modules/hls.js/dist/hls.min.js \
		node_modules/js-sha3/build/sha3.min.js static/dist/
	@touch $@

## contracts: compile contracts/src/*.sol into contracts/build/*.json (commit the result)
contracts: contracts/node_modules/.installed
	cd contracts && node compile.mjs

## run: install, migrate, print the demo login, then serve web + worker + beat (Ctrl-C stops all)
run: $(VENV)/.base-installed static/dist/.built
	$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py demo_account
	@echo "StreamGate on http://127.0.0.1:$(PORT)/  (API docs /api/docs/, admin /admin/)"
	WEB_PORT=$(PORT) $(BIN)/honcho --procfile Procfile start

## test: dev dependencies, PostgreSQL + Redis up, lint, the whole suite
test: $(VENV)/.dev-installed contracts/node_modules/.installed static/dist/.built
	tests/services.sh
	tests/browser.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --create-db

## bench: every benchmark under tests/benchmarks/, printing ratios against their baselines
bench: $(VENV)/.dev-installed contracts/node_modules/.installed static/dist/.built
	@for script in tests/benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var node_modules static/dist
