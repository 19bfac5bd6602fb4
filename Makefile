# ccp — every target calls the same commands a person would type; the venv is made on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ccp-installed
PYTEST_WORKERS ?= 2

.PHONY: help venv repro repro-go test quick serve mock-upstream summarize verify-routing gates clean

help:
	@echo "make repro          mock upstreams + shim + probes + METRICS + gates (no keys needed)"
	@echo "make test           the whole suite (pytest-xdist, $(PYTEST_WORKERS) workers)"
	@echo "make quick          unit tests only"
	@echo "make serve          run the shim on 127.0.0.1:18080"
	@echo "make mock-upstream  run a mock Anthropic-compatible upstream"
	@echo "make summarize | verify-routing | gates   reports over logs/usage.jsonl"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

repro: $(STAMP)
	$(BIN)/ccp repro

repro-go: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m repro_go

test: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS)

quick: $(STAMP)
	$(BIN)/pytest -m quick

serve: $(STAMP)
	$(BIN)/ccp serve

mock-upstream: $(STAMP)
	$(BIN)/ccp mock-upstream --port 18090

summarize: $(STAMP)
	$(BIN)/ccp summarize

verify-routing: $(STAMP)
	$(BIN)/ccp verify-routing

gates: $(STAMP)
	$(BIN)/ccp gates --metrics results/METRICS_repro.json

clean:
	rm -rf logs results .pytest_cache build *.egg-info
