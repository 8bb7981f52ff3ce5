# Two commands do everything on a fresh machine:
#   make run    — set up, then run the main job on the embedded defaults (local broker, SQLite)
#   make test   — set up, then run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast setup system-deps bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build lies on this machine's disk; an unpinned torch pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian's chromium and CJK fonts: the digest test screenshots the HTML as a person would see it.
system-deps:
	@if [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null; \
	fi

run: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(VENV)/bin/feedback-miner run

test: $(STAMP) system-deps
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(VENV)/bin/python -m pytest -q -p no:cacheprovider

# Everything but the tests that load the real model (markers: model, broker, postgres).
test-fast: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not model"

bench: $(STAMP)
	$(VENV)/bin/feedback-miner bench model

clean:
	rm -rf $(VENV) build *.egg-info
