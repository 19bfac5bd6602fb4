# ccp — every target calls the same commands a person would type; the venv is made on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ccp-installed
PYTEST_WORKERS ?= 2
CLAUDE_VERSION ?= 2.1.331
CLAUDE_DIR     := .tools/claude
CLAUDE         := $(CLAUDE_DIR)/node_modules/.bin/claude

.PHONY: help venv lint claude repro repro-go repro-go-quick repro-mitm repro-py mitm verify-sse sandbox-smoke test quick serve mock-upstream \
        summarize verify-routing gates doctor clean clean-logs bench bench-quick smoke-license go-proxy logs-rotate overnight-go
# PORT: `make go-proxy PORT=8082` / `make serve PORT=…` (empty: the profile's port); MITM_PORT: `make mitm`
PORT ?=
MITM_PORT ?= 8082

help:
	@echo "make repro          mock upstreams + shim + probes + METRICS + gates (no keys needed)"
	@echo "make test           the whole suite (pytest-xdist, $(PYTEST_WORKERS) workers)"
	@echo "make repro-go       the repro job under the operators' names (METRICS_go_repro.json, GO-REPRO-SUMMARY.md)"
	@echo "make repro-go-quick 1x haiku + 1x sonnet through the claude CLI (METRICS_go_repro_quick.json)"
	@echo "make repro-py       the repro through ccp mitm (METRICS_py_repro.json, PY-REPRO-SUMMARY.md)"
	@echo "make repro-mitm     the repro through ccp mitm, then the both-fronts scenarios"
	@echo "make go-proxy       ccp up [PORT]: the shim in the background (PORT=8082 make go-proxy)"
	@echo "make logs-rotate    rotate the daily logs/usage.jsonl now (a running shim follows)"
	@echo "make mitm           run ccp mitm on :MITM_PORT (8082) (then: eval \"\$$(ccp mitm env)\")"
	@echo "make verify-sse     the streaming scenarios"
	@echo "make claude         install the pinned claude CLI into $(CLAUDE_DIR)"
	@echo "make quick          unit tests only"
	@echo "make lint           ruff check + ruff format --check + mypy, on proxy (CI runs it first)"
	@echo "make smoke-license  licence enforcement end to end (USE_LICENSE_LOGIN=1: via the issuer)"
	@echo "make serve          run the shim on 127.0.0.1:18080"
	@echo "make mock-upstream  run a mock Anthropic-compatible upstream"
	@echo "make summarize | verify-routing | gates   reports over logs/usage.jsonl (results/METRICS.json)"
	@echo "make bench          the benchmark (LiteLLM and CCR installed on demand into .bench/)"
	@echo "make overnight      ccp soak: probes in a loop until both lanes succeeded (MAX_MINUTES=480)"
	@echo "make overnight-go   the same, under the Go shim's name"
	@echo "make soak-ci        the soak's CI version on mocks (restart + outage in the middle)"
	@echo "make ab             ccp ab --toggle \$$TOGGLE (h1h2, header-mode, NAME=a,b): results/AB-*.md"
	@echo "make mutate         the seeded bugs (harness/mutants.toml) against LAYER=quick|test|repro|named"
	@echo "make mutate-sample  8 mutants rotating by date against their own tests (CI runs it)"

# .[dev] is the shim plus every extra (harness, reports, mitm, lint, test: pyproject.toml). mitmproxy
# (for `ccp mitm`) caps versions the shim's own dependencies are past; it runs on the newer ones, so
# it is installed without its pins, after the rest (see requirements-mitm.txt). tox does the same.
# The stamp depends on both files: editing either re-runs this on the next make.
$(STAMP): pyproject.toml requirements-mitm.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-mitm.txt
	@touch $(STAMP)

venv: $(STAMP)

# ruff and mypy as configured in pyproject.toml ([tool.ruff], [tool.mypy]); all three run, and it
# fails if any did. .ci/run runs it before `make test`. Only proxy/ for now: harness, reports, tests
# and scenarios still have ruff findings (mostly E501 and B905) to be fixed before they join.
lint: $(STAMP)
	@rc=0; \
	echo "$(BIN)/ruff check proxy"; $(BIN)/ruff check proxy || rc=1; \
	echo "$(BIN)/ruff format --check proxy"; $(BIN)/ruff format --check proxy || rc=1; \
	echo "$(BIN)/mypy proxy"; $(BIN)/mypy proxy || rc=1; \
	exit $$rc

# The real Claude Code CLI, pinned, in a git-ignored project folder. Without npm the CLI probes and
# scenarios are skipped (with a line saying so); everything else still runs.
$(CLAUDE):
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix $(CLAUDE_DIR) --no-audit --no-fund --loglevel=error \
	    @anthropic-ai/claude-code@$(CLAUDE_VERSION) && $(CLAUDE) --version; \
	else echo "npm not found: skipping the claude CLI (CLI probes will be skipped)"; fi

claude: $(CLAUDE)

repro: $(STAMP) $(CLAUDE)
	$(BIN)/ccp repro

# the operators' artifact names: results/METRICS_go_repro.json + GO-REPRO-SUMMARY.md, …
repro-go: $(STAMP) $(CLAUDE)
	$(BIN)/ccp repro --run go_repro --summary GO-REPRO-SUMMARY.md

repro-go-quick: $(STAMP) $(CLAUDE)
	$(BIN)/ccp repro --quick --run go_repro_quick --summary GO-REPRO-QUICK-SUMMARY.md

# HTTPS_PROXY mode: the same probes and gates through `ccp mitm` (METRICS_mitm_repro.json), then the
# scenarios that run one table through both fronts; repro-py is the operators' name for it
repro-mitm: $(STAMP) $(CLAUDE)
	$(BIN)/ccp repro --front mitm
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m repro_mitm

# the mitmproxy router's repro under its own names (results/METRICS_py_repro.json + PY-REPRO-SUMMARY.md)
repro-py: $(STAMP) $(CLAUDE)
	$(BIN)/ccp repro --front mitm --run py_repro --summary PY-REPRO-SUMMARY.md

# run the mitm front in the foreground on :MITM_PORT (`eval "$$(ccp mitm env)"` in the client's shell)
mitm: $(STAMP)
	$(BIN)/ccp mitm --port $(MITM_PORT)

verify-sse: $(STAMP) $(CLAUDE)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m sse

test: $(STAMP) $(CLAUDE)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --junitxml=results/junit.xml

quick: $(STAMP)
	$(BIN)/pytest -m quick

serve: $(STAMP)
	$(BIN)/ccp serve $(if $(PORT),--port $(PORT))

# the operators' `make go-proxy`: the shim in the background (ccp up), on PORT when given
go-proxy: $(STAMP)
	$(BIN)/ccp up $(PORT)

logs-rotate: $(STAMP)
	$(BIN)/ccp logs-rotate

mock-upstream: $(STAMP)
	$(BIN)/ccp mock-upstream --port 18090

# results/METRICS.json + SUMMARY.md (the operators' names) from the daily logs/usage.jsonl
summarize: $(STAMP)
	$(BIN)/ccp summarize

verify-routing: $(STAMP)
	$(BIN)/ccp verify-routing

gates: $(STAMP)
	$(BIN)/ccp gates --providers

doctor: $(STAMP)
	$(BIN)/ccp doctor

# the daily usage logs and partials of the profile's logs folder (wherever the ccp home is); refused
# while that profile's shim runs (it would keep writing the deleted file): make logs-rotate instead
clean-logs: $(STAMP)
	@if $(BIN)/ccp ps -q; then echo "clean-logs: the shim is running (ccp down first, or make logs-rotate)"; exit 1; fi
	@d="$$($(BIN)/python -c 'from proxy.config.settings import Settings; print(Settings.from_env().logs_dir)')" && \
	  rm -rf "$$d"/usage.jsonl "$$d"/usage.jsonl.* "$$d"/partials && echo "clean-logs: emptied $$d"

clean:
	rm -rf logs results .pytest_cache build *.egg-info

# Licence enforcement: shim restarted without, with and again without a licence (keys minted by the
# test). USE_LICENSE_LOGIN=1 gets the licence through the issuer and `ccp license login` instead.
smoke-license: $(STAMP)
	$(BIN)/pytest -m licence scenarios/licence

sandbox-smoke: $(STAMP) $(CLAUDE)
	$(BIN)/ccp sandbox-smoke --runtime $${SANDBOX_RUNTIME:-local}

# The benchmark: direct / floor / ccp / LiteLLM / claude-code-router on one fast mock, and the https path
# (direct-tls / floor-tls / ccp-tls and each upstream client) on its TLS port. The third-party
# proxies are installed on first use into the git-ignored .bench/ (skipped with a line if they cannot be).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet orjson uvloop py-spy
	$(BIN)/ccp bench

bench-quick: $(STAMP)
	$(BIN)/python -m pip install --quiet orjson uvloop py-spy
	$(BIN)/ccp bench --quick

# quotas, the SQLite usage store and row 4b on a real shim (mocks only)
.PHONY: quotas
quotas: $(STAMP)
	$(BIN)/pytest scenarios/quotas tests/proxy/sinks/test_quotas.py tests/proxy/sinks/test_store.py \
	  tests/proxy/server/test_usage_api.py tests/proxy/cli/test_usage.py

# reviewer artifacts: the HTML report, the bundle (folder + .tgz under results/bundles) and pruning
.PHONY: report bundle prune-results
N ?= 5
report: $(STAMP)
	$(BIN)/ccp report

bundle: $(STAMP)
	$(BIN)/ccp bundle

prune-results: $(STAMP)
	$(BIN)/ccp bundle --prune $(N)

# soak: haiku + sonnet probes in a loop until both lanes succeeded (or MAX_MINUTES); mocks unless
# ALLOW_REAL_API=1 with keys. Knobs: MAX_MINUTES TIMEOUT_SECS SLEEP_BETWEEN SOAK_TOGGLE_H1 SOAK_PROBE
# SOAK_UNTIL_SUCCESSES SOAK_WINDOW SOAK_WINDOW_MINUTES SOAK_CHAOS. soak-ci: the CI version on mocks.
# ab: one toggle, arms interleaved (TOGGLE=h1h2 | header-mode | NAME=a,b; ROUNDS >= 3).
.PHONY: overnight overnight-go soak-ci ab
MAX_MINUTES ?= 480
TIMEOUT_SECS ?= 120
SLEEP_BETWEEN ?= 30
TOGGLE ?= h1h2
ROUNDS ?= 5
overnight: $(STAMP) $(CLAUDE)
	MAX_MINUTES=$(MAX_MINUTES) TIMEOUT_SECS=$(TIMEOUT_SECS) SLEEP_BETWEEN=$(SLEEP_BETWEEN) $(BIN)/ccp soak

overnight-go: overnight

soak-ci: $(STAMP)
	$(BIN)/pytest scenarios/soak tests/harness/test_soak.py

ab: $(STAMP)
	$(BIN)/ccp ab --toggle '$(TOGGLE)' --rounds $(ROUNDS)

# mutation testing (harness/mutate.py, the library in harness/mutants.toml): every seeded bug of
# proxy/ applied in a copy of the tree and run against a layer; results/MUTATE-<layer>-<ts>.md|json.
# LAYER: named (each mutant's own tests), quick (then pytest -m quick), test (then the suite),
# repro (ccp repro --quick; REPRO_SET=1: only the mutants it must catch). mutate-sample: CI's
# rotating sample, 8 mutants a day against their own tests; it fails when one survives.
.PHONY: mutate mutate-sample
LAYER ?= quick
MUTATE_WORKERS ?= $(PYTEST_WORKERS)
mutate: $(STAMP)
	$(BIN)/ccp mutate --layer $(LAYER) --workers $(MUTATE_WORKERS) $(if $(REPRO_SET),--repro-set)

# (--no-baseline: in CI `make test` has just passed the unmutated tree; run alone, drop it)
mutate-sample: $(STAMP)
	$(BIN)/ccp mutate --layer named --sample 8 --workers $(MUTATE_WORKERS) --timeout 300 \
	  $(if $(BASELINE),,--no-baseline)
