# logmr: `make demo` runs the main job on the sample logs, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install test test-fast lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: install
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check logmr tests bench
	$(BIN)/mypy

demo: install
	bash scripts/demo.sh

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .demo bench/out .pytest_cache .mypy_cache .ruff_cache
