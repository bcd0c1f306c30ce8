# Quick start: `make demo` runs the whole pipeline on synthetic data; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: install demo repro paper test lint bench clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# The demo runs through DVC (params.yaml names config/demo.yaml), so a following `dvc repro` has nothing to do.
demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

repro: demo

paper: install
	$(BIN)/snakemake --cores $(CORES)

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --lint --configfile config/demo.yaml

bench: install
	$(BIN)/python benchmarks/speed.py
