# VST Curator: `make run` (install, demo data if none, app + worker) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CURATOR_HOME ?= $(CURDIR)/data
DEMO_SAMPLES ?= 2000
PORT ?= 8501

.PHONY: run test test-fast install system-deps test-deps demo-data lint bench labelstudio trainers gpu clean-data oidc

$(VENV)/.installed: requirements.txt requirements-ml.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-ml.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

install: system-deps $(VENV)/.installed

# Debian packages the code needs: open3d's import needs libusb on a fresh machine.
system-deps:
	@dpkg -s libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq libusb-1.0-0; }

# What only the tests need: Debian's Chromium for Playwright (never `playwright install`) and a PostgreSQL server
# (the state database must work on it; the tests start a throwaway cluster).
test-deps:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# The demo data set, generated and ingested once when the data home has no catalog.
demo-data: install
	@if [ ! -f "$(CURATOR_HOME)/catalog.duckdb" ]; then \
		$(BIN)/python -m curation demo --out "$(CURATOR_HOME)/demo" --samples $(DEMO_SAMPLES) && \
		$(BIN)/python -m curation ingest "$(CURATOR_HOME)/demo/vst_p" "$(CURATOR_HOME)/demo/vst_r"; \
	fi

# The worker runs beside the app and stops with it.
run: demo-data
	@$(BIN)/python -m curation stats
	@echo "VST Curator: http://127.0.0.1:$(PORT)  (data home $(CURATOR_HOME); Ctrl-C stops app and worker)"
	@$(BIN)/python -m curation worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python -m curation app --port $(PORT)

# Label Studio lives in its own environment: in the app's it would downgrade pyarrow and pull ~90 packages.
.venv-ls/bin/label-studio: requirements-ls.txt
	@test -x .venv-ls/bin/python || $(PYTHON) -m venv .venv-ls
	.venv-ls/bin/pip install -q -r requirements-ls.txt
	@touch $@

labelstudio: install .venv-ls/bin/label-studio
	scripts/labelstudio.sh

# The trainers' own data code (LLaMA-Factory, ms-swift, verl) for tests/trainers, in an environment of its own:
# every package pinned and installed without resolving (their full dependency sets pull CUDA builds and web UIs);
# ms-swift's newer `datasets` on a path of its own. 1.8 GB, about 1.5 min cold; --no-compile halves that (what
# the tests import is compiled when first imported).
.venv-trainers/.installed: requirements-trainers.txt requirements-trainers-swift.txt
	@test -x .venv-trainers/bin/python || $(PYTHON) -m venv .venv-trainers
	.venv-trainers/bin/pip install -q --no-compile --no-deps -r requirements-trainers.txt
	rm -rf .venv-trainers/swift-datasets
	.venv-trainers/bin/pip install -q --no-compile --no-deps --target .venv-trainers/swift-datasets \
		-r requirements-trainers-swift.txt
	@touch $@

trainers: .venv-trainers/.installed

# The GPU environment for model checks on a CUDA machine (vLLM with its own torch): .venv-gpu, never the CPU/test
# environment. `make gpu`, then `.venv-gpu/bin/python -m curation worker` runs model.reanswer on vLLM.
.venv-gpu/.installed: requirements.txt requirements-gpu.txt pyproject.toml
	@test -x .venv-gpu/bin/python || $(PYTHON) -m venv .venv-gpu
	.venv-gpu/bin/pip install -q --upgrade pip
	grep -v '^label-studio-sdk' requirements.txt > .venv-gpu/requirements-core.txt
	.venv-gpu/bin/pip install -q -r .venv-gpu/requirements-core.txt -r requirements-gpu.txt
	.venv-gpu/bin/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

gpu: system-deps .venv-gpu/.installed

# The OpenID Connect provider the sign-in tests start (tests/support/oidc.py): panva's oidc-provider from npm, an
# OpenID Certified implementation, pinned by tests/support/oidc/package-lock.json and installed into .oidc/.
.oidc/.installed: tests/support/oidc/package.json tests/support/oidc/package-lock.json
	@command -v npm >/dev/null || { echo "make: npm (Node.js >= 20) is needed for the sign-in tests' OIDC provider" >&2; exit 1; }
	mkdir -p .oidc && cp tests/support/oidc/package.json tests/support/oidc/package-lock.json .oidc/
	cd .oidc && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

oidc: .oidc/.installed

test: install test-deps .venv-ls/bin/label-studio .venv-trainers/.installed .oidc/.installed
	$(BIN)/python -m pytest

# Quick local loop: everything but the real-server, browser and trainer tests (CI runs them all through `make test`).
test-fast: install
	$(BIN)/python -m pytest -m "not labelstudio and not postgres and not browser and not trainers"

lint: install
	$(BIN)/ruff check curation db exports app tests bench

bench: install
	$(BIN)/python -m bench.scale --samples 4100000

clean-data:
	rm -rf "$(CURATOR_HOME)"
