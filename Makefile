# Every target creates its virtualenv on first use; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?=
# make test: the newest 3.3.x. make test-oldest: the newest 3.1.x patch (3.1.0 installed without Airflow's
# constraint file resolves a structlog that 3.1.0 cannot import).
NEWEST_AIRFLOW_SPEC ?= apache-airflow>=3.3,<3.4
OLDEST_AIRFLOW ?= 3.1.8
PYTEST_ARGS ?=
UV = $(VENV)/bin/uv pip install --python $(VENV)/bin/python -q
# What make test type-checks (mypy --strict, settings in pyproject's [tool.mypy]). For now the modules that
# are already clean; make typecheck checks the whole package. Switch this to airflow_provider_baseten once
# that passes.
MYPY_PATHS ?= airflow_provider_baseten/__init__.py airflow_provider_baseten/config.py \
	airflow_provider_baseten/batch.py airflow_provider_baseten/operators/base.py airflow_provider_baseten/sensors/base.py \
	airflow_provider_baseten/hooks airflow_provider_baseten/_batch \
	airflow_provider_baseten/models.py airflow_provider_baseten/exceptions.py airflow_provider_baseten/_redact.py \
	airflow_provider_baseten/_h1.py airflow_provider_baseten/_routes.py airflow_provider_baseten/_logs.py \
	airflow_provider_baseten/_ratelimit.py airflow_provider_baseten/links.py airflow_provider_baseten/demo.py \
	airflow_provider_baseten/emulator/config.py airflow_provider_baseten/emulator/server.py \
	airflow_provider_baseten/emulator/clock.py airflow_provider_baseten/emulator/validation.py \
	airflow_provider_baseten/emulator/pytest_plugin.py airflow_provider_baseten/emulator/__main__.py

.PHONY: test test-oldest typecheck demo bench chaos prism ui-check e2e lint format clean

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(UV) -e '.[test]' "$(if $(AIRFLOW_VERSION),apache-airflow==$(AIRFLOW_VERSION),$(NEWEST_AIRFLOW_SPEC))"
	touch $@

test: $(VENV)/.stamp  ## unit, emulator-integration and DAG tests (newest Airflow)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict $(MYPY_PATHS)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not chaos and not airflow_e2e" $(PYTEST_ARGS)

typecheck: $(VENV)/.stamp  ## mypy --strict on the whole package (make test checks MYPY_PATHS for now)
	$(VENV)/bin/mypy --strict airflow_provider_baseten

test-oldest:  ## the same suite on the oldest supported Airflow
	$(MAKE) test VENV=.venv-oldest AIRFLOW_VERSION=$(OLDEST_AIRFLOW)

demo: $(VENV)/.stamp  ## run every example DAG against a local emulator
	$(VENV)/bin/python -m airflow_provider_baseten.demo

bench: $(VENV)/.stamp  ## batch throughput vs baseten-performance-client, and import cost
	$(UV) -e '.[test,bench]'
	$(VENV)/bin/python benchmarks/run.py

chaos: $(VENV)/.stamp  ## every reliability case (fast and long, real Airflow included); prints a table
	BASETEN_CHAOS_REPORT=1 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/chaos -s $(PYTEST_ARGS)

prism: $(VENV)/.stamp  ## every hook call against Stoplight Prism serving Baseten's specs (npm-installs it in build/)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/chaos/test_prism.py -s $(PYTEST_ARGS)

ui-check: $(VENV)/.stamp  ## connection form in a real browser (installs Debian's chromium if missing)
	bash scripts/ui-check.sh

e2e: $(VENV)/.stamp  ## example DAGs and deadlines (timeouts, retries, a SIGKILLed triggerer) in a real Airflow
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -m airflow_e2e tests/e2e/test_real_airflow.py tests/e2e/test_deadlines.py -s $(PYTEST_ARGS)

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.stamp
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .venv .venv-oldest .pytest_cache .ruff_cache
