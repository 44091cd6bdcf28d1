# The two commands: `make run` (set up and run the platform) and `make test` (set up and pass every test).
# Both create .venv and install what they need, apt packages included, when missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 1026
DATA ?= data
ORION_FT ?= ../shared/orion-ft
JOBS ?= 2

.PHONY: run test test-unit test-orion system-deps orion-ft-measure bench bench-quick bench-history bench-rules bench-dashboard bench-api bench-discovery bench-orchestrator bench-iot clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

# FiLiP (PyPI filip), a real client of the history service's QuantumLeap API, in a venv of its own:
# it pins older pydantic, paho-mqtt and requests than ours (tests/analytics/test_filip.py).
FILIP_STAMP := .venv-filip/.installed
$(FILIP_STAMP):
	@[ -x .venv-filip/bin/python ] || $(PYTHON) -m venv .venv-filip
	.venv-filip/bin/python -m pip install -q 'filip==0.8.1'
	@touch $(FILIP_STAMP)

# Debian packages the tests use: curl (Orion's conformance kit), PostgreSQL with PostGIS, Chromium and
# its driver (the dashboard's browser tests).
system-deps:
	@scripts/install-system-deps.sh

# The context broker (:$(PORT)), the IoT agent (:4041 north, :7896 devices) and an MQTT broker (:1883:
# Mosquitto, installed here when it can be; the embedded amqtt otherwise), on 127.0.0.1 (RUN_ARGS='-auth'
# or '-host 0.0.0.0' and more: waziup run --help).
RUN_ARGS ?=
run: $(STAMP)
	@scripts/install-node-red.sh >/dev/null || echo "Node-RED could not be installed: apps of runtime node-red cannot run"
	@scripts/install-mosquitto.sh >/dev/null 2>&1 || echo "mosquitto could not be installed: the embedded MQTT broker runs"
	$(VENV)/bin/waziup run -port $(PORT) -data $(DATA) $(RUN_ARGS)

test: $(STAMP) $(FILIP_STAMP) system-deps
	@scripts/install-node-red.sh
	$(PY) -m pytest -q -n $(JOBS) --dist loadgroup

test-unit: $(STAMP) $(FILIP_STAMP)
	$(PY) -m pytest -q -n $(JOBS) --dist loadgroup -m "not slow"

# Orion's cases on SQLite and on PostgreSQL, side by side.
test-orion: $(STAMP) system-deps
	$(PY) -m pytest -q -n 2 --dist loadgroup -m slow tests/orion_compat

# Measure every given Orion case (not part of `make test`): writes orion-ft.json and the list of passing cases.
orion-ft-measure: $(STAMP) system-deps
	$(ORION_FT)/run --broker-cmd scripts/orion-ft-broker --jobs $(JOBS) --keep-going \
		--report orion-ft.json --write-passed orion-ft-passed.txt

# Benchmark suite (not part of `make test`): BENCH_SECONDS per workload, on each of BENCH_BACKENDS
# (PostgreSQL on a throw-away cluster), or on BENCH_DB_URI, an existing store; then the history
# service's benchmark (bench-history, on throw-away stores only), the rules service's (bench-rules), the
# dashboard's (bench-dashboard), the WAZIUP API's (bench-api), sensor discovery's (bench-discovery) and the orchestrator's (bench-orchestrator).
BENCH_SECONDS ?= 10
BENCH_BACKENDS ?= sqlite postgresql
BENCH_HISTORY_VALUES ?= 10000000
bench: $(STAMP) system-deps
	@bench/install.sh
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_BACKENDS='$(BENCH_BACKENDS)' BENCH_DB_URI='$(BENCH_DB_URI)' $(PY) bench/run.py
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_BACKENDS='$(BENCH_BACKENDS)' BENCH_HISTORY_VALUES=$(BENCH_HISTORY_VALUES) \
		$(PY) bench/history.py
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_RULES=$(BENCH_RULES) BENCH_RULES_RATE=$(BENCH_RULES_RATE) $(PY) bench/rules.py
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_DASHBOARD_PAGES=$(BENCH_DASHBOARD_PAGES) BENCH_DASHBOARD_RATE=$(BENCH_DASHBOARD_RATE) \
		$(PY) bench/dashboard.py
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_API_PUBLISHERS=$(BENCH_API_PUBLISHERS) $(PY) bench/waziup_api.py
	$(PY) bench/discovery.py
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_ORCH_ENTITIES=$(BENCH_ORCH_ENTITIES) BENCH_ORCH_RECORDS=$(BENCH_ORCH_RECORDS) \
		$(PY) bench/orchestrator.py

# Perf regression check (not part of `make test`): every broker workload for BENCH_QUICK_SECONDS on
# BENCH_QUICK_BACKENDS, compared with the last recorded run; names the rows that moved by more than
# 15% of their share of the bare baseline, exits 1 if one dropped (bench/quick.py, bench/compare.py).
BENCH_QUICK_SECONDS ?= 2
BENCH_QUICK_BACKENDS ?= sqlite
bench-quick: $(STAMP) system-deps
	@bench/install.sh
	BENCH_SECONDS=$(BENCH_QUICK_SECONDS) BENCH_BACKENDS='$(BENCH_QUICK_BACKENDS)' $(PY) bench/quick.py

# History service benchmark (not part of `make test`): ingestion against a QuantumLeap-like baseline,
# broker -> feed -> history end to end, queries on BENCH_HISTORY_VALUES stored values (bench/history.py;
# BENCH_HISTORY_GROWN, BENCH_HISTORY_CONNECTIONS, BENCH_HISTORY_LOAD, BENCH_ONLY from the environment).
bench-history: $(STAMP) system-deps
	@bench/install.sh
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_BACKENDS='$(BENCH_BACKENDS)' BENCH_HISTORY_VALUES=$(BENCH_HISTORY_VALUES) \
		$(PY) bench/history.py

# Rules service benchmark (not part of `make test`): R1 rule evaluations/s with BENCH_RULES rules over
# notifications posted to /notices, R2 delay from a broker update to the rule's action at BENCH_RULES_RATE
# updates/s (bench/rules.py; BENCH_CONNECTIONS, BENCH_ONLY from the environment).
BENCH_RULES ?= 1000
BENCH_RULES_RATE ?= 100
bench-rules: $(STAMP)
	@bench/install.sh
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_RULES=$(BENCH_RULES) BENCH_RULES_RATE=$(BENCH_RULES_RATE) $(PY) bench/rules.py

# Dashboard benchmark (not part of `make test`): D1 the broker's API through the dashboard's forwarding
# against the broker straight, D2 the live feed's delay from a broker update to BENCH_DASHBOARD_PAGES pages
# at BENCH_DASHBOARD_RATE updates/s (bench/dashboard.py; BENCH_CONNECTIONS, BENCH_ONLY from the environment).
BENCH_DASHBOARD_PAGES ?= 20
BENCH_DASHBOARD_RATE ?= 200
bench-dashboard: $(STAMP)
	@bench/install.sh
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_DASHBOARD_PAGES=$(BENCH_DASHBOARD_PAGES) BENCH_DASHBOARD_RATE=$(BENCH_DASHBOARD_RATE) \
		$(PY) bench/dashboard.py

# WAZIUP API benchmark (not part of `make test`): A1 value pushes over HTTP and A2 device reads (wrk, 100 public
# devices, against the bare Starlette yardstick A0), A3 QoS 1 MQTT pushes from BENCH_API_PUBLISHERS publishers
# timed to a subscriber; A1 and A3 check that the history holds every acknowledged value (bench/waziup_api.py;
# BENCH_CONNECTIONS, BENCH_ONLY from the environment).
BENCH_API_PUBLISHERS ?= 16
bench-api: $(STAMP)
	@bench/install.sh
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_API_PUBLISHERS=$(BENCH_API_PUBLISHERS) $(PY) bench/waziup_api.py

# Orchestrator benchmark: O1 discovery queries, O2 apps' ingress against the app straight, O3 http-json
# source runs (bench/orchestrator.py; BENCH_CONNECTIONS, BENCH_ONLY from the environment).
BENCH_ORCH_ENTITIES ?= 2000
BENCH_ORCH_RECORDS ?= 5000
bench-orchestrator: $(STAMP)
	@bench/install.sh
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_ORCH_ENTITIES=$(BENCH_ORCH_ENTITIES) BENCH_ORCH_RECORDS=$(BENCH_ORCH_RECORDS) \
		$(PY) bench/orchestrator.py

# Sensor discovery: 100,000 sensors, p50 per query kind (fails at 50 ms or more).
bench-discovery: $(STAMP)
	$(PY) bench/discovery.py

# IoT agent benchmark (not part of `make test`): MQTT Ultralight measures end to end into the broker,
# BENCH_DEVICES devices, closed loop (at most BENCH_WINDOW in flight) or BENCH_RATE measures/s.
BENCH_DEVICES ?= 1000
BENCH_RATE ?= 0
BENCH_WINDOW ?= 200
bench-iot: $(STAMP)
	@scripts/install-mosquitto.sh >/dev/null
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_DEVICES=$(BENCH_DEVICES) BENCH_RATE=$(BENCH_RATE) BENCH_WINDOW=$(BENCH_WINDOW) \
		$(PY) bench/iot_agent.py

clean:
	rm -rf $(VENV) .venv-filip .node-red *.egg-info .pytest_cache .hypothesis
