# Two commands on a fresh machine: `make run` (the main job) and `make test` (the test suite).
# Each creates the Python environment (.venv, pinned by envs/requirements.txt) first.
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
ARGS ?=

.PHONY: env run smoke cpu test lint report clean gpu-check
env: $(VENV)/.installed

$(VENV)/.installed: envs/requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r envs/requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $@

run: env  ## the paper preset on all cores and up to 4 GPUs (without a GPU: says so and what it costs first)
	$(PY) -m kvt.preflight $(ARGS)
	$(SNAKEMAKE) --cores all --resources gpu=4 $(ARGS)

cpu: env  ## every task and variant, reduced (README: timings, data)
	$(SNAKEMAKE) --cores all --config preset=cpu $(ARGS)

smoke: env  ## the whole DAG on tiny data and fixture files, a few minutes on 2 cores
	$(SNAKEMAKE) --cores all --config preset=smoke $(ARGS)

test: env
	$(PY) -m pytest $(ARGS)

lint: env
	$(VENV)/bin/snakefmt --check workflow
	$(SNAKEMAKE) --lint

gpu-check: env  ## every family and variant trained briefly on the GPU: throughput, memory, the paper preset's GPU-hours
	$(PY) -m kvt.bench.gpu $(ARGS)

report: env  ## browsable record of the last run's tables and figures
	$(SNAKEMAKE) --report report.zip $(ARGS)

clean:  ## every result (the data folder stays)
	rm -rf results/synthetic results/vision results/anomaly results/nlp results/data results/logs \
	  results/benchmarks results/tables results/figures results/summary.csv
