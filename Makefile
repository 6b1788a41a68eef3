# Shipyard: two commands on a fresh machine: `make up` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: up install install-examples install-test test test-unit lint typecheck test-k8s bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# An editable install compiles nothing ahead (pip does for a normal one), and with
# PYTHONDONTWRITEBYTECODE set Python never caches it: compile once, or every `shipyard up`
# and every new worker process compiles Shipyard's sources again (~0.15 s each).
COMPILE := $(BIN)/python -m compileall -q -x /node_modules/ src/shipyard

install: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(COMPILE)

# Install (with the libraries the examples use), build the dashboard (scripts/ui-build.sh:
# npm install + vite build), train the example iris models, start the platform on the embedded
# default (SQLite + local processes under ~/.shipyard) and apply examples/ and
# examples/showcase/ (a pipeline run, an experiment and a served model to follow in the
# dashboard). Ctrl-C stops it and its Pods.
up: install-examples
	bash scripts/ui-build.sh
	@test -f examples/serving/models/iris-v1/model.joblib || $(BIN)/python examples/serving/train_iris.py
	$(BIN)/shipyard up --host $(HOST) --port $(PORT) --apply examples/ --apply examples/showcase/

install-examples: $(BIN)/python
	$(BIN)/pip install -q -e '.[serving,pipelines,sklearn]'
	$(COMPILE)

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,torch]'
	$(COMPILE)
	bash scripts/test-services.sh
	bash scripts/ui-test-deps.sh
	bash scripts/k8s-tools.sh

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install-test lint
	bash scripts/run-pytest.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Tier 2 of the Kubernetes runtime: a real kube-apiserver/controller-manager/scheduler (built
# once from Debian's source, cached under /var/cache/shipyard-k8s) and etcd on 127.0.0.1.
test-k8s: install-test
	nice -n 19 bash scripts/k8s-build.sh
	SHIPYARD_K8S=1 bash scripts/run-pytest.sh tests/k8s tests/runtime/test_runtime_contract.py
