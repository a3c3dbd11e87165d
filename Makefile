# Countermand: `make run` runs the whole job end to end; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_DIR := .run/kafka
OPA_VERSION := v1.22.4
PEERS_GOPATH := $(CURDIR)/.run/peers/go
OPA_BIN := $(PEERS_GOPATH)/bin/opa
KAFKA_PORT ?= 9092
KAFKA_CONTROLLER_PORT ?= 9093
TEST_KAFKA_DIR := $(CURDIR)/.run/test-kafka
STAMP := $(VENV)/.installed

.PHONY: help venv lint format tools kafka-fetch kafka-up kafka-down topics compose-secrets run up down test test-cluster bench bench-impact bench-enforce bench-clusters bench-agent bench-faults bench-audit bench-notify bench-console bench-scale bench-peers peers-opa screenshots docs clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -r requirements-dev.txt
	@$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create the virtualenv and install pinned dependencies

lint: venv ## Check formatting, lint rules and the import contracts (ruff, import-linter)
	@$(VENV)/bin/ruff format --check --quiet . || { echo "make lint: run 'make format' to reformat" >&2; exit 1; }
	@$(VENV)/bin/ruff check --quiet .
	@out=$$($(VENV)/bin/lint-imports --no-cache 2>&1) || { echo "$$out" >&2; exit 1; }; echo "$$out" | grep "^Contracts:"

format: venv ## Reformat the code and fix what ruff can fix safely
	@$(VENV)/bin/ruff format --quiet .
	@$(VENV)/bin/ruff check --quiet --fix .

tools: ## Install Debian's prometheus (promtool) and chromium (HTML report test) when missing (apt-get; needs root, as in CI)
	@missing=""; command -v promtool >/dev/null || missing="prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make tools: missing$$missing; run 'sudo make tools' once" >&2; exit 1; fi; \
	  echo "tools: installing Debian's$$missing package(s)..."; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

kafka-fetch: ## Fetch the Apache Kafka jars from Maven Central (once, cached)
	@$(PYTHON) deploy/kafka/kafkalocal.py fetch

kafka-up: kafka-fetch ## Start a local single-node Kafka (KRaft) on 127.0.0.1:$(KAFKA_PORT)
	@$(PYTHON) deploy/kafka/kafkalocal.py up --data $(KAFKA_DIR) --port $(KAFKA_PORT) --controller-port $(KAFKA_CONTROLLER_PORT)

kafka-down: ## Stop the local Kafka
	@$(PYTHON) deploy/kafka/kafkalocal.py down --data $(KAFKA_DIR)

topics: venv ## Apply the ACLs (as admin), then create or update the topics (as tooling) on the local Kafka
	@set -a; . $(KAFKA_DIR)/secrets/env/admin.env; set +a; \
	  COUNTERMAND_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(VENV)/bin/countermand acls apply
	@set -a; . $(KAFKA_DIR)/secrets/env/tooling.env; set +a; \
	  COUNTERMAND_KAFKA_BOOTSTRAP=127.0.0.1:$(KAFKA_PORT) $(VENV)/bin/countermand topics apply

compose-secrets: ## Make docker-compose.yml's Kafka secrets (CA, certificate, passwords) under .run/compose-secrets
	@$(PYTHON) deploy/kafka/kafkalocal.py secrets --secrets .run/compose-secrets --compose

run: venv kafka-fetch ## Install, start Kafka and every service, run the mission end to end, stop
	@$(PY) -m cli.demo --kafka-dir .run/demo-kafka

up: venv kafka-fetch ## Start Kafka and every service in the background, load a registry, print the endpoints
	@$(PY) -m cli.local_stack up

down: ## Stop exactly what `make up` started (safe to run twice)
	@if [ -x $(PY) ]; then $(PY) -m cli.local_stack down; else echo "nothing to stop (no $(VENV))"; fi

test: venv kafka-fetch tools ## Run the whole test suite on a real Kafka the session starts
	@trap '$(PYTHON) deploy/kafka/kafkalocal.py down --data $(TEST_KAFKA_DIR) >/dev/null 2>&1' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	COUNTERMAND_TEST_KAFKA_DIR=$(TEST_KAFKA_DIR) $(PY) -m pytest -m "not cluster" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

test-cluster: venv kafka-fetch ## Run the resilience suite on a three-node Kafka cluster it starts and stops
	@trap '$(PYTHON) deploy/kafka/kafkalocal.py down --data $(TEST_KAFKA_DIR)-cluster >/dev/null 2>&1' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	COUNTERMAND_TEST_KAFKA_DIR=$(TEST_KAFKA_DIR) $(PY) -m pytest -m cluster tests/cluster $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-cluster: no tests were collected" >&2; exit 1; fi; exit $$rc

bench: bench-impact bench-enforce ## Run every benchmark and print result tables

bench-impact: venv kafka-fetch ## Benchmark impact evaluation and registry imports (bench/results/impact.json, imports.json)
	@$(PY) -m bench.impact
	@$(PY) -m bench.imports

bench-enforce: venv kafka-fetch ## Benchmark enforcement on real Kafka and the agent (bench/results/enforce.json, agent.json)
	@$(PY) -m bench.enforce
	@$(PY) -m bench.agent

bench-clusters: venv kafka-fetch ## Directive -> all clusters acked at 10M users with 3 and with 30 clusters (30 agents in 3 processes; bench/results/clusters.json)
	@$(PY) -m bench.clusters

bench-agent: venv ## Benchmark the agent alone: checks, HTTP latency, memory, a one-user delta and a lift at 1M/10M/50M held (bench/results/agent.json)
	@$(PY) -m bench.agent

bench-faults: venv kafka-fetch ## Enforcement and notices on a three-node Kafka cluster, recovery from broker faults and from SIGKILL of each service (SCENARIOS=broker_kill,notifier_kill,... RUNS=0 for a shorter run; bench/results/faults.json)
	@$(PY) -m bench.faults $(if $(SCENARIOS),--scenarios $(SCENARIOS)) $(if $(RUNS),--runs $(RUNS))

bench-audit: venv ## Benchmark the audit's replay, report, explain and verify (bench/results/audit.json)
	@$(PY) -m bench.audit

bench-console: venv kafka-fetch ## Benchmark the console in headless Chromium: first paint, ack to browser (bench/results/console.json)
	@$(PY) -m bench.console

bench-scale: venv ## Per-unit costs (bytes and CPU per affected user) and the scale model of docs/scaling.md (bench/results/scale.json)
	@$(PY) -m bench.scale

peers-opa: ## Build Open Policy Agent v1.22.4 from the Go module proxy into .run/peers/go/bin (skipped without Go)
	@if ! command -v go >/dev/null 2>&1; then echo "make peers-opa: Go is not installed; the OPA peer is skipped" >&2; exit 0; fi; \
	if [ -x $(OPA_BIN) ] && $(OPA_BIN) version 2>/dev/null | grep -q "^Version: $(OPA_VERSION:v%=%)$$"; then exit 0; fi; \
	echo "building opa $(OPA_VERSION) with $$(go version) (a few minutes)"; \
	GOPATH=$(PEERS_GOPATH) GOBIN=$(PEERS_GOPATH)/bin GOMODCACHE=$(PEERS_GOPATH)/pkg/mod GOCACHE=$(CURDIR)/.run/peers/gocache \
	GOFLAGS="-mod=mod -modcacherw" go install github.com/open-policy-agent/opa@$(OPA_VERSION)

bench-peers: venv kafka-fetch peers-opa ## Countermand side by side with Open Policy Agent: load, memory, check p99, change, lift (USERS=1000000,10000000; bench/results/peers.json)
	@$(PY) -m bench.peers --opa $(OPA_BIN) $(if $(USERS),--users $(USERS))

screenshots: venv kafka-fetch tools ## A PNG of each console page from headless Chromium into docs/screenshots/
	@$(PY) -m devtools.screenshots

bench-notify: venv kafka-fetch ## Benchmark the notifier: channels to aiosmtpd and a webhook receiver, confirmed -> delivered on Kafka, a kill -9 mid-batch (NOTICES=100000; bench/results/notify.json)
	@$(PY) -m bench.notify $(if $(NOTICES),--notices $(NOTICES))

docs: venv ## Regenerate JSON Schemas and AsyncAPI documents under docs/
	@$(PY) -m cli.docs

clean: ## Remove run state and caches (keeps the virtualenv and Kafka jars)
	rm -rf .run .pytest_cache bench/results
