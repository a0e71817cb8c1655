# smsfailover: `make dev` runs everything locally, `make test` runs every test.
# Every target bootstraps what it needs (uv, the Python environment, the Node tools) on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help bootstrap chromium dev demo test test-fast lint fmt typecheck bench deploy deploy-dry-run migrate vendor clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(UV):
	@# A distribution's own python3 (Debian 12, Ubuntu 24.04) refuses pip --user (PEP 668); uv is a standalone tool
	@command -v uv >/dev/null 2>&1 || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet \
		--disable-pip-version-check --user uv
	@# pip --user puts uv in ~/.local/bin, often not on PATH: link it where a fresh shell finds it (root), else say so
	@command -v uv >/dev/null 2>&1 || ln -sf $(HOME)/.local/bin/uv $(HOME)/.local/bin/uvx /usr/local/bin/ 2>/dev/null \
		|| echo "uv is in $(HOME)/.local/bin: add it to PATH (export PATH=\"\$$HOME/.local/bin:\$$PATH\") for the README's uv commands"

.venv/.synced: $(UV) pyproject.toml uv.lock packages/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

node_modules/.synced: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bootstrap: .venv/.synced node_modules/.synced ## install the Python and Node tools

dev: bootstrap ## run origin :8000, edge :8787 and the provider simulator :8025 (Ctrl-C stops all)
	SMSFAILOVER_ENV=development $(RUN) python -m smsfailover.express_shim.devstack

demo: bootstrap ## send a stream of messages while the origin is stopped and restarted
	SMSFAILOVER_ENV=development $(RUN) python -m smsfailover.express_shim.demo

test: bootstrap chromium ## every test: unit, Pyodide, origin on SQLite and PostgreSQL, edge, contract, end-to-end, browser
	$(RUN) pytest $(PYTEST_ARGS)

chromium: ## Debian's Chromium for the browser tests, installed with apt when missing and this is root
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "Chromium is missing and apt cannot install it here (needs root): the 4 browser tests will skip"

test-fast: bootstrap ## the unit tests only
	$(RUN) pytest tests/unit $(PYTEST_ARGS)

lint: bootstrap ## ruff (lint + format check) and mypy strict
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy packages tests benchmarks

fmt: bootstrap ## format and fix what ruff can
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

migrate: bootstrap ## apply the origin's migrations to SMSFAILOVER_DATABASE_URL
	$(RUN) python -m smsfailover.express_shim migrate

bench: bootstrap ## run the benchmarks and write docs/BENCHMARKS.md
	$(RUN) python -m benchmarks

vendor: bootstrap ## copy core and its pure-Python dependencies into python_modules/ for the worker bundle
	$(RUN) python packages/edge_worker/tools/vendor.py

deploy-dry-run: vendor ## package the worker without uploading (what CI checks)
	npx wrangler deploy --dry-run --outdir dist/worker

deploy: vendor ## ship the edge worker to Cloudflare (needs CLOUDFLARE_API_TOKEN)
	npx wrangler deploy

clean: ## remove local state and build output
	rm -rf var dist python_modules .venv node_modules .pytest_cache .mypy_cache .ruff_cache
