# Fleetscope — every target installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
PYTEST_ARGS ?=
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Material for MkDocs prints a banner about its successor on every build; the build is what matters here.
export NO_MKDOCS_2_WARNING := 1

.PHONY: install run test test-unit test-integration test-e2e lint format typecheck bench bench-nab synth bundle docs docs-serve clean

# The venv holds exactly what uv.lock pins (the project editable, with the dev extra); a lock that no
# longer matches pyproject.toml fails here (`uv lock` updates it) instead of being re-resolved.
$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(BIN)/uv sync --locked --extra dev --python $(PY)
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(STAMP) $(NODE_STAMP)

run: install
	$(BIN)/fleetscope sandbox up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

# Everything but the real-time incident end-to-end suite (that is `make test-e2e`; .ci/run runs both),
# on two workers, a file per worker (each has its own emulator and CDK synthesis; bundles are shared,
# built under a lock). The schemathesis file runs on its own, in one process: its items (one per API
# operation) share one node id, which pytest-xdist reports as one.
FUZZ_TESTS = tests/service/test_cars_fuzz.py
test: install lint typecheck
	$(BIN)/pytest -n 2 --dist loadfile --ignore=tests/e2e --ignore=$(FUZZ_TESTS) $(PYTEST_ARGS)
	$(BIN)/pytest $(FUZZ_TESTS) $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m "not integration and not e2e and not browser and not infra" $(PYTEST_ARGS)

test-integration: install
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

# The real-time incident suite: one sandbox per test module, both modules side by side.
test-e2e: install
	$(BIN)/pytest -n 2 --dist loadfile tests/e2e $(PYTEST_ARGS)

bench: install
	$(PY) -m benchmarks

bench-nab: install
	$(PY) -m benchmarks bench_nab

synth: install
	npx cdk synth --quiet

bundle: install
	$(PY) -m infra.bundling

# The documentation site (mkdocs.yml, docs/): --strict turns every warning (a broken link between pages,
# a missing anchor, a link to a repository file that does not exist) into a failed build.
DOCS_ADDR ?= 127.0.0.1:8000
docs: $(STAMP) $(NODE_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP) $(NODE_STAMP)
	$(BIN)/mkdocs serve --strict --dev-addr $(DOCS_ADDR)

clean:
	rm -rf $(VENV) node_modules cdk.out .mypy_cache .ruff_cache .pytest_cache test-artifacts site
