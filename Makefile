# The two commands: `make run` (the whole local stack) and `make test` (the whole suite).
# Both create the virtualenv and install pinned dependencies on first use.

# Python 3.12 is the Lambda runtime; .python-version makes pyenv resolve python3 to it here.
PYTHON ?= $(shell for p in python3.12 python3; do \
	if $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test lint fmt bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@if [ -z "$(PYTHON)" ]; then echo "boardsite needs Python 3.12 (3.11 at least): install python3.12 or set PYTHON=/path/to/python" >&2; exit 1; fi
	@$(PYTHON) -c 'import sys; v=sys.version_info[:2]; v == (3, 12) or print(f"warning: using Python {v[0]}.{v[1]}; Lambda runs 3.12", file=sys.stderr)'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py devstack

test: $(STAMP)
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Resize benchmark: our processor against naive Pillow and pyvips (the README's "Performance" table).
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/resize.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .local .pytest_cache .build staticfiles
