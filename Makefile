# tradebot: `make sandbox` runs the product offline; `make test` runs lint, types and tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint typecheck pytest browser sandbox run emulator cluster bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The sandbox's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser: $(CHROMIUM) is missing; installing chromium with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji; \
	else \
		echo "browser: $(CHROMIUM) is missing and cannot be installed here (needs root and apt-get)." >&2; \
		echo "browser: install it (Debian: sudo apt-get install chromium) or point CHROMIUM at one; tests/sandbox need it" >&2; \
		exit 1; \
	fi

pytest: $(STAMP) browser
	$(BIN)/pytest -q

test: lint typecheck pytest

sandbox: $(STAMP)
	$(BIN)/tradebot sandbox

run: $(STAMP)
	$(BIN)/tradebot run

emulator: $(STAMP)
	$(BIN)/tradebot emulator

# Several instances on the local PostgreSQL and Redis, behind a balancer, offline (docs/deploy.md).
INSTANCES ?= 3
cluster: $(STAMP)
	$(BIN)/python -m sandbox.cluster --instances $(INSTANCES)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
