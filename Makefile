# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# uv is installed into a private tools venv (from PyPI) when the machine has none; dependencies come from uv.lock.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
# The suite runs on this many workers; the broker's tests (marker kafka) time a live stream and run after, alone.
TEST_WORKERS ?= 2

.PHONY: setup demo test lint broker bench-ingest bench-api bench-pipeline bench-hostile bench-stream bench-ml bench-engines clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

# The optional native landing pass (native/, Rust): built when cargo is there; without it the Python path lands all.
$(VENV)/.native: $(VENV)/.synced native/pyproject.toml native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)
	@if ! command -v cargo >/dev/null 2>&1; then \
		echo "cargo not found: the native landing pass (native/) is not built; the Python path lands everything"; \
	elif $(UV) pip install --python $(VENV)/bin/python ./native; then touch $@; \
	else echo "the native landing pass (native/) did not build: the Python path lands everything"; fi

setup: $(VENV)/.synced $(VENV)/.native

demo: setup
	$(VENV)/bin/retreasure demo

test: setup
	scripts/install-chromium
	scripts/install-java
	scripts/install-azurite
	$(VENV)/bin/ruff check src sim tests bench
	$(VENV)/bin/ruff format --check src sim tests bench
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadscope -m "not kafka"; parallel=$$?; \
	$(VENV)/bin/pytest -m kafka && exit $$parallel

# A local Kafka broker for the streaming path (its jars are fetched into .tools/kafka on first use).
broker: setup
	$(VENV)/bin/retreasure broker

lint: setup
	$(VENV)/bin/ruff check --fix src sim tests bench
	$(VENV)/bin/ruff format src sim tests bench

bench-ingest: setup
	$(VENV)/bin/python -m bench.ingest

bench-api: setup  # BENCH_API_ARGS="--root /tmp/bench-api" keeps the built lake for the next run
	$(VENV)/bin/python -m bench.api $(BENCH_API_ARGS)

bench-pipeline: setup
	$(VENV)/bin/python -m bench.pipeline --years $(or $(YEARS),1 2 3)

bench-hostile: setup
	$(VENV)/bin/python -m bench.hostile

bench-stream: setup
	$(VENV)/bin/python -m bench.stream

bench-ml: setup
	$(VENV)/bin/python -m bench.ml

# DuckDB and local Spark side by side (Spark's Delta jars are fetched into .tools/spark on first use).
bench-engines: setup
	scripts/install-java
	$(VENV)/bin/python -m bench.engines

clean:
	rm -rf lake landing sim-data .broker .pytest_cache
