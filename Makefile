# Quick start: `make demo` runs the whole pipeline on synthetic data; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: install demo repro paper shipped-model unlock test test-cluster lint bench clean-demo

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

# Incomplete jobs of a killed run are re-run (rerun-incomplete, also in profiles/default) and training resumes
# from its last checkpoint.
paper: install
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete

# The shipped hippocampus model, regenerated from its configuration: the workflow trains and evaluates the
# Med-NCA of config/hippocampus_cpu.yaml (record, card, NQM threshold calibrated on validation), then it is
# copied into the package. DATA is the folder holding Task04_Hippocampus (downloaded there if absent).
DATA ?= data/raw
shipped-model: install
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete --configfile config/hippocampus_cpu.yaml \
	    --config data_dir=$(DATA) -- results/records/hippocampus/med_nca/seed0.json \
	    results/models/hippocampus/med_nca/seed0/model_card.md
	$(BIN)/mednca ship --results results --dataset hippocampus --model med_nca --name hippocampus

# A run killed with kill -9 (or a power loss) leaves Snakemake's lock behind, and the next run stops with
# "Directory cannot be locked". Once sure no other run is using this folder: `make unlock`, then repeat
# `make demo` or `make paper`; it picks up where it stopped.
unlock: install
	$(BIN)/snakemake --unlock

# The suite starts with the linters, so CI checks the code's style and the workflow's conventions too.
# Two pytest workers, each taking whole test files: the DVC tests (one `dvc repro` shared by their file) run
# on one while the other takes the rest; TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# A real single-node SLURM cluster (munge, slurmdbd, slurmctld, slurmd) and an OpenSSH server on 127.0.0.1,
# started and stopped by the tests; needs root, and installs Debian's packages if absent.
test-cluster: install
	$(BIN)/pytest -q tests/cluster

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --lint --configfile config/demo.yaml

bench: install
	$(BIN)/python benchmarks/speed.py
