# StreamGate: `make run` starts the whole stack, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PORT ?= 8000
FLOWER_PORT ?= 5555
export PATH := $(BIN):$(PATH)

.PHONY: run test lint format bench clean contracts check

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

# checkov (the Kubernetes manifests' policy check) in a venv of its own: its many dependencies
# clash with requirements/dev.txt. requirements/checkov.txt pins all of them.
.venv-checkov/.installed: requirements/checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet -r requirements/checkov.txt
	@touch $@

## contracts: compile contracts/src/*.sol into contracts/build/*.json (commit the result)
contracts: contracts/node_modules/.installed
	cd contracts && node compile.mjs

## run: install, migrate, print the demo and Flower logins, then serve web + worker + beat + flower
# Every entry point defaults to the production settings; `make run` is the laptop. supervisord
# runs the Procfile's processes and restarts one that dies (supervisord.conf); Ctrl-C stops all.
run: export DJANGO_SETTINGS_MODULE ?= streamgate.settings.local
run: $(VENV)/.base-installed static/dist/.built
	$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py demo_account
	@mkdir -p -m 700 var && test -s var/flower-login || (umask 077 && \
		$(BIN)/python -c 'import secrets; print("ops:" + secrets.token_urlsafe(12))' > var/flower-login)
	@echo "StreamGate on http://127.0.0.1:$(PORT)/  (API docs /api/docs/, admin /admin/)"
	@echo "Flower on http://127.0.0.1:$(FLOWER_PORT)/  (login $$(cat var/flower-login))"
	@rm -rf var/prometheus && mkdir -m 700 var/prometheus
	umask 077 && WEB_PORT=$(PORT) FLOWER_PORT=$(FLOWER_PORT) FLOWER_BASIC_AUTH=$$(cat var/flower-login) \
		PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus SUPERVISOR_RUN_DIR=$(CURDIR)/var \
		$(BIN)/supervisord --configuration supervisord.conf

## test: dev dependencies, PostgreSQL + Redis up, lint, types, migrations, the whole suite
# makemigrations --check fails when a model change has no migration; it needs no database, so
# it gets an empty in-memory one rather than waiting on PostgreSQL's (not yet created) default.
test: $(VENV)/.dev-installed contracts/node_modules/.installed static/dist/.built .venv-checkov/.installed
	tests/services.sh
	tests/browser.sh
	tests/nginx.sh
	tests/prometheus.sh
	tests/kubernetes.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m mypy
	DJANGO_SETTINGS_MODULE=streamgate.settings.test DATABASE_URL=sqlite://:memory: \
		$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest --create-db

## bench: every benchmark under tests/benchmarks/, printing ratios against their baselines
bench: $(VENV)/.dev-installed contracts/node_modules/.installed static/dist/.built
	@tests/nginx.sh --bench
	@for script in tests/benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

## check: Django's deployment checks on the production settings (warnings fail)
check: $(VENV)/.base-installed
	DJANGO_SETTINGS_MODULE=streamgate.settings.production \
	DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')}" \
	STREAMGATE_PUBLIC_URL="$${STREAMGATE_PUBLIC_URL:-https://streamgate.example}" \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

## lint: ruff's lint rules and format check (the same hooks run in .pre-commit-config.yaml)
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var node_modules static/dist
