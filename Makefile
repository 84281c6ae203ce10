# pmx — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PMX := $(VENV)/bin/pmx
STAMP := $(VENV)/.pmx-installed

export PYTHONPATH := $(CURDIR)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1

.PHONY: setup lock run test test-slow check lint typecheck ui sql docs bench bench-models bench-features bench-backtest bench-refresh bench-warehouse bench-cluster bench-scale clean

## setup: create .venv, install the locked dependencies and pmx itself (editable: the `pmx` command)
setup: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

$(STAMP): requirements.lock pyproject.toml
	@echo "pmx: creating $(VENV) and installing the locked dependencies (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m python_models.forecasters.compiled
	@touch $@

## lock: re-resolve requirements.lock from pyproject.toml (runtime + test + lint groups) with uv;
## TORCH_WHEELS is a folder (or index) holding the CPU build of torch, so the lock pins torch==X+cpu
TORCH_WHEELS ?= /opt/wheels
lock:
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra lint --python-version 3.11 \
		--find-links $(TORCH_WHEELS) --no-annotate --custom-compile-command "make lock" -o requirements.lock

$(DAGSTER_HOME)/dagster.yaml: dagster_pmx/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp $< $@

## run: materialize the whole asset graph on the bundled data and print the backtest summary
run: setup
	$(PMX) run $(ARGS)

## test: the test suite CI runs
test: setup
	$(PY) -m pytest

## test-slow: the heavy tests the default run leaves out (research-only models, more point-in-time cuts)
test-slow: setup
	$(PY) -m pytest -m slow

## check: lint, format and type checks (what CI runs before the tests)
check: lint typecheck

## lint: ruff's linter and formatter check on the Python packages, tests and benchmarks
lint: setup
	$(VENV)/bin/ruff check python_models dagster_pmx expectations benchmarks tests dbt_project/models
	$(VENV)/bin/ruff format --check python_models dagster_pmx expectations benchmarks tests dbt_project/models

## typecheck: mypy on the numerical library (configuration in pyproject.toml)
typecheck: setup
	$(VENV)/bin/mypy

## ui: Dagster UI on http://127.0.0.1:3000 for this code location
ui: setup
	$(PMX) ui

## sql: read-only SQL on the warehouse, e.g. make sql Q="select * from marts.backtest_summary"
sql: setup
	$(PMX) sql $(if $(Q),"$(Q)",)

## docs: dbt's documentation site for the warehouse (every mart with its columns and lineage)
docs: setup
	$(PMX) docs

## bench: time each stage of the pipeline on the default data
bench: setup
	$(PY) benchmarks/bench_pipeline.py

## bench-cluster: the walk-forward's fan-out on a local Dask cluster against a plain process pool (a few minutes)
bench-cluster: setup
	$(PY) benchmarks/bench_cluster.py

## bench-models: refits per second of every forecaster on the default data; batched vs per-window SSA
bench-models: setup
	$(PY) benchmarks/bench_models.py

## bench-backtest: the backtester vs vectorbt (installed into .venv for this benchmark only) on 100k x 10 and the default universe
bench-backtest: setup
	$(PY) -m pip install --quiet vectorbt==1.2.0
	$(PY) benchmarks/bench_backtest.py

## bench-features: feature + target build on a synthetic 800 tickers x 14 years universe, and the same 14 features with
## Qlib's expression engine in the same run (pyqlib installed into .venv-qlib for this benchmark only, never into .venv)
bench-features: setup
	@test -f .venv-qlib/.qlib-installed || { echo "pmx: installing pyqlib into .venv-qlib (a few minutes the first time)" \
		&& $(PYTHON) -m venv .venv-qlib \
		&& .venv-qlib/bin/python -m pip install --quiet pyqlib==0.9.7 numpy==2.4.6 pandas==3.1.1 \
		&& touch .venv-qlib/.qlib-installed; }
	$(PY) benchmarks/bench_features.py --qlib-python .venv-qlib/bin/python $(ARGS)

clean:
	rm -rf dbt_project/target dbt_project/logs .pytest_cache

## bench-warehouse: reader latency beside 20 daily refreshes, and disk use with and without upkeep (about 20 minutes)
bench-warehouse: setup
	$(PY) benchmarks/bench_warehouse.py

## bench-refresh: the daily refresh of one new session over the full build, three times, on the default data (about 15 minutes)
bench-refresh: setup
	$(PY) benchmarks/bench_refresh.py

## bench-scale: the whole graph on synthetic 20, 100 and 500 tickers x 18 years, local and TCP Dask clusters: time,
## peak RSS and n^b growth of every step, extrapolated to 3,000 tickers (hours; ARGS="--tickers 3,6 --years 3" to try it)
bench-scale: setup
	$(PY) benchmarks/bench_scale.py $(ARGS)
