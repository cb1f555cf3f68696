# The two commands: `make run` (the whole local stack) and `make test` (the whole suite).
# Both create the virtualenv on first use and install exactly the locked packages (requirements-dev.txt: every
# package, transitive ones too, with hashes; `make lock` re-resolves it from the *.in files, see deploy/lock.py).

# Python 3.12 is the Lambda runtime and the locks' interpreter; .python-version makes pyenv resolve python3 to it here.
PYTHON ?= $(shell for p in python3.12 python3; do \
	if $$p -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test lint fmt bench bench-burst clean lock

$(STAMP): requirements-dev.txt
	@if [ -z "$(PYTHON)" ]; then echo "boardsite needs Python 3.12 (Lambda's runtime, and what the locks are resolved for): install python3.12 or set PYTHON=/path/to/python3.12" >&2; exit 1; fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else "$(VENV) is not Python 3.12: make clean, then try again")'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	$(BIN)/python -m deploy lock --prune
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e client
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py devstack

test: $(STAMP)
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/python -m deploy lock --check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Re-resolve the locks after editing a *.in file; UPGRADE=1 moves every package to its newest, UPGRADE=name one
# (a package a *.in pins with == moves only when its pin there does).
lock: $(STAMP)
	$(BIN)/python -m deploy lock $(if $(UPGRADE),--upgrade $(UPGRADE))

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Resize benchmark: our processor against naive Pillow and pyvips (the README's "Performance" table).
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-bench.txt
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/resize.py $(BENCH_ARGS)

# A burst of uploads through the API, the local function runner at concurrency 1 and 4 (the README's "Performance");
# BENCH_ARGS=--check to fail on a missed goal. Starts its own moto, site and runners (ports: MOTO_PORT, BOARDSITE_PORT).
bench-burst: $(STAMP)
	$(BIN)/python bench/burst.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .local .pytest_cache .build staticfiles
