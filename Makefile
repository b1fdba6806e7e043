# The two commands of a fresh machine: `make run` and `make test` (both idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: the runtime (what `make run` and the service need) and the dev extras on top (tests, lint, bench).
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# Debian packages the tests use: promtool (prometheus), amtool and Alertmanager (prometheus-alertmanager),
# nginx (the compose proxy, run natively) and headless Chromium for PDF reports.
SYSTEM_PACKAGES := prometheus prometheus-alertmanager nginx chromium

NOTEBOOK_STAMP := $(VENV)/.notebooks

.PHONY: run test install install-dev system-deps start stop restart status bench lint clean notebooks

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(RUNTIME_STAMP)

install-dev: $(STAMP)

$(NOTEBOOK_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,notebooks]'
	touch $(NOTEBOOK_STAMP)

# JupyterLab on the project's kernel (python3 of .venv) in notebooks/, with QERBEROS_HOME and the MLflow store
# set to what `qerberos` itself uses from this directory (absolute: the kernel runs in notebooks/). Jupyter
# refuses root unless told: our machines and containers run as root.
SETTING = $(BIN)/python -c 'from qerberos.settings import load_settings; print(load_settings().$(1))'
notebooks: $(NOTEBOOK_STAMP)
	@export QERBEROS_HOME="$$($(call SETTING,home))" QERBEROS_MLFLOW_TRACKING_URI="$$($(call SETTING,mlflow_tracking_uri))"; \
	echo "QERBEROS_HOME=$$QERBEROS_HOME"; echo "QERBEROS_MLFLOW_TRACKING_URI=$$QERBEROS_MLFLOW_TRACKING_URI"; \
	exec $(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 \
		--MultiKernelManager.default_kernel_name=python3 $$([ "$$(id -u)" = 0 ] && echo --allow-root)

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p > /dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing > /dev/null; \
	fi

run: $(RUNTIME_STAMP)
	$(BIN)/qerberos init
	$(BIN)/qerberos serve

start: $(RUNTIME_STAMP)
	$(BIN)/qerberos init
	$(BIN)/qerberos start

stop: $(RUNTIME_STAMP)
	$(BIN)/qerberos stop

restart: $(RUNTIME_STAMP)
	$(BIN)/qerberos restart

status: $(RUNTIME_STAMP)
	$(BIN)/qerberos status

test: $(STAMP) system-deps
	$(BIN)/pytest

# Benchmarks (figures in the README): `make bench` runs the ledger one; others: `python -m bench NAME`.
bench: $(STAMP)
	@dpkg -s wrk > /dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk > /dev/null)
	$(BIN)/python -m bench ledger

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy models qerberos cli api analytics pipelines bench

clean:
	rm -rf $(VENV) data logs .pytest_cache
