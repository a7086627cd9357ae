# Stealth Health Partner API: contract, generated models, sandbox, conformance, portal.
# `make help` lists the targets. `make test` is the one command CI runs (.ci/run).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

VENV    := .venv
PY      := $(VENV)/bin/python
# The install stamp is keyed to the content of pyproject.toml: a changed pin reinstalls, a touched file does not.
STAMP   := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
# npm ci writes this hidden lockfile; it is older than package-lock.json exactly when node_modules is stale.
NODE_STAMP := node_modules/.package-lock.json
REDOCLY := node_modules/.bin/redocly
# Redocly CLI must not phone home: no telemetry, no update check, no announcements.
REDOCLY_ENV := REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_NOTIFICATIONS=true REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

SPEC_DIRS := spec/partner-api spec/pharmacy-api
# (colons in file names, as in pharmacy webhooks/shipment:created.yaml, are escaped for make)
SPEC_FILES := $(subst :,\:,$(shell find spec -name '*.yaml' 2>/dev/null))
BUNDLE_DIR := build/openapi
BUNDLES := $(BUNDLE_DIR)/partner-api.json $(BUNDLE_DIR)/pharmacy-api.json \
           $(BUNDLE_DIR)/partner-api.referral.json $(BUNDLE_DIR)/partner-api.clinical.json \
           $(BUNDLE_DIR)/partner-api.prescriber.json
# Set ALLOW_MISSING=1 while path/webhook files listed in a root index are still being written.
BUNDLE_FLAGS := $(if $(ALLOW_MISSING),--allow-missing,)
PYTEST_FLAGS ?= -n auto -q

.PHONY: help install lint lint-python lint-spec lint-redocly lint-drift bundle generate test \
        serve conformance portal bench soak clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- install -------------------------------------------------------------------------------------------

$(STAMP):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

install: $(STAMP) $(NODE_STAMP) ## Create .venv (project + dev tools) and node_modules (pinned Redocly, Prism, ...); idempotent

# --- spec ----------------------------------------------------------------------------------------------

# Bundling checks structure (refs, tiers); `make lint` validates the bundles (openapi-spec-validator, every
# example), so `make generate` after a spec edit stays fast (issue #10: <= 10 s).
$(BUNDLES) &: $(STAMP) $(SPEC_FILES) $(wildcard stealth_spec/*.py)
	$(PY) -m stealth_spec.bundle spec/partner-api --out $(BUNDLE_DIR)/partner-api --tiers $(BUNDLE_FLAGS)
	$(PY) -m stealth_spec.bundle spec/pharmacy-api --out $(BUNDLE_DIR)/pharmacy-api $(BUNDLE_FLAGS)

bundle: $(BUNDLES) ## Bundle both specs and the per-tier subsets into build/openapi/*.{yaml,json} (validated)

generate: $(BUNDLES) ## Regenerate the pydantic models in generated/stealth_models from the bundles
	$(PY) -m stealth_spec.generate

# --- lint ----------------------------------------------------------------------------------------------

lint-python: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lint-spec: $(BUNDLES)
	$(VENV)/bin/openapi-spec-validator spec/partner-api/openapi.yaml spec/pharmacy-api/openapi.yaml $(BUNDLES)
	$(PY) -m stealth_spec.lint $(SPEC_DIRS) $(BUNDLES) $(BUNDLE_FLAGS)

lint-redocly: $(BUNDLES) $(NODE_STAMP)
	$(REDOCLY_ENV) $(REDOCLY) lint --format=stylish --max-problems=1000 \
	  spec/partner-api/openapi.yaml spec/pharmacy-api/openapi.yaml $(BUNDLES)

lint-drift: $(BUNDLES)
	$(PY) -m stealth_spec.generate --check

lint: lint-python lint-spec lint-redocly lint-drift ## Ruff, spec validation + our spec rules + Redocly on sources and bundles, generated-code drift

# --- test ----------------------------------------------------------------------------------------------

test: install lint ## Everything CI runs: install, lint, bundle, pytest, and a reduced conformance pass
	$(PY) -m pytest $(PYTEST_FLAGS)
	$(PY) -m conformance.local --tiers $(CONFORMANCE_TIERS) --quick --report-dir build/conformance-quick

# --- later issues --------------------------------------------------------------------------------------

serve: $(STAMP) portal ## Run the reference sandbox on SQLite (http://127.0.0.1:8080, PORT to change; portal at /docs)
	$(VENV)/bin/stealth serve

# Every tier (conformance/local.py provisions each one's partners; the runs go in parallel against one sandbox).
CONFORMANCE_TIERS ?= referral,clinical,prescriber

conformance: $(BUNDLES) ## Start a fresh local sandbox and run the full conformance suite against it (reports in build/conformance)
	$(PY) -m conformance.local --tiers $(CONFORMANCE_TIERS) --report-dir build/conformance

portal: $(BUNDLES) $(NODE_STAMP) ## Build the static developer portal into build/portal (also served by `make serve` at /docs)
	$(PY) -m portal.build --out build/portal

# BENCH_ARGS passes options to the harness, e.g. BENCH_ARGS="--parts http --db sqlite" (python -m bench.run -h).
bench: $(BUNDLES) $(NODE_STAMP) ## Benchmarks (installs wrk if missing): bench/results/<timestamp>.json + table in bench/README.md
	$(PY) -m bench.run $(BENCH_ARGS)

soak: install ## Long reliability runs (needs STEALTH_TEST_POSTGRES_URL, STEALTH_TEST_REDIS_URL); figures in build/reliability, RELIABILITY.md
	@test -n "$${STEALTH_TEST_POSTGRES_URL:-}" -a -n "$${STEALTH_TEST_REDIS_URL:-}" || \
	  { echo "make soak needs STEALTH_TEST_POSTGRES_URL and STEALTH_TEST_REDIS_URL (as .ci/run sets them)" >&2; exit 2; }
	rm -f build/reliability/results.jsonl
	$(PY) -m pytest -m soak -q -rA --durations=0 tests/server
	@echo "== soak figures: build/reliability/results.jsonl"

clean: ## Remove build outputs and caches (keeps .venv and node_modules)
	rm -rf build .pytest_cache .ruff_cache .hypothesis
