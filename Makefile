# clonequeue — every target sets itself up (venv + install) on a fresh machine.
SHELL := bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT_SIMULATOR ?= 8765
PORT_REDIS ?= 6390
# The suite waits on workers and the simulator far more than it computes (~60 % of
# two cores busy with 4 processes): 6 xdist processes on 2 cores, work-stealing so one
# process never holds a long tail (2026-12-03: 5 m 0 s against 5 m 56 s with 4).
TEST_WORKERS ?= 6
# The timing tests measure wall-clock time, so they run after the rest, never beside it.
# They mostly sleep (21 s of CPU in 89 s alone): three files at once, each file's tests
# one after another (2026-12-07: 62 s, was 89 s; three tests at once took 39 s, but the
# limiter's tests beside each other failed 2 runs in ~8).

.PHONY: help install browser test test-fast lint format demo simulator redis worker beat flower bench chaos clean

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install clonequeue with its dev tools

# Debian's chromium for tests/e2e/test_flower_browser.py. Never fails: without root
# and apt-get (or offline) it says so, and that one test skips.
browser:  ## Install Debian's chromium where missing (for the Flower browser test)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "browser: installing Debian's chromium with apt-get" >&2; \
	    { DEBIAN_FRONTEND=noninteractive apt-get -qq update \
	      && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends chromium; \
	    } >/dev/null 2>&1 </dev/null || echo "browser: apt-get could not install chromium" >&2; \
	  else \
	    echo "browser: no chromium, and no apt-get as root to install it" >&2; \
	  fi; \
	}

test: $(STAMP) browser  ## Run the whole test suite (own Redis, simulator and workers)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not timing"
	$(BIN)/pytest -q -n 3 --dist loadfile -m timing  # apart from the rest: they measure wall-clock time

test-fast: $(STAMP)  ## Unit tests only
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)  ## ruff + mypy (strict)
	$(BIN)/ruff check clonequeue tests bench
	$(BIN)/ruff format --check clonequeue tests bench
	$(BIN)/mypy

format: $(STAMP)  ## Apply ruff's formatting and fixes
	$(BIN)/ruff format clonequeue tests bench
	$(BIN)/ruff check --fix clonequeue tests bench

demo: $(STAMP)  ## Embedded Redis + simulator + worker + a sample batch, then a results table
	$(BIN)/clonequeue demo

simulator: $(STAMP)  ## Run the API simulator in the foreground
	$(BIN)/clonequeue simulator --port $(PORT_SIMULATOR)

redis: $(STAMP)  ## Run an embedded Redis (AOF on) in the foreground
	$(BIN)/clonequeue redis --port $(PORT_REDIS)

worker: $(STAMP)  ## Run a worker (with the watchdog) against the configured Redis/API
	$(BIN)/clonequeue worker --beat

beat: $(STAMP)  ## Run the watchdog scheduler alone
	$(BIN)/clonequeue beat

flower: $(STAMP)  ## Run Flower (needs CLONEQUEUE_FLOWER_BASIC_AUTH=user:password)
	$(BIN)/clonequeue flower

bench: $(STAMP)  ## Run the benchmarks under bench/ (figures + baselines + plots)
	$(BIN)/python bench/run_all.py

chaos: $(STAMP)  ## The full chaos suite (>= 1,000 jobs per fault; takes a while)
	CHAOS_FULL=1 $(BIN)/pytest -q tests/chaos tests/integration/test_sentinel.py tests/integration/test_step_machine.py tests/integration/test_cli_follow_outage.py

clean:  ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/out demo-out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
