# Two commands on a fresh machine: `make run` (the pipeline) and `make test` (the test suite).
# Each creates the Python environment (.venv, pinned by envs/requirements.txt) first.
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
ARGS ?=

.PHONY: env run smoke cpu test test-fast lint report clean gpu-check
env: $(VENV)/.installed

$(VENV)/.installed: envs/requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r envs/requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $@

# With a GPU the paper preset, without one the cpu preset (the preflight says why and what the
# paper preset would cost); PRESET=paper|cpu|smoke chooses. The chosen preset reaches Snakemake
# through a config file, so that any --config in ARGS still applies on top of it. Snakemake keeps
# going past a dataset it cannot fetch; the end names each missing dataset and how to stage it.
# The exit status is Snakemake's.
PRESET ?=
RUN_CONFIG ?= .snakemake/make-run.yaml
RUN_SNAKEMAKE = $(SNAKEMAKE) --cores all --resources gpu=4 --keep-going --configfile $(RUN_CONFIG)
run: env  ## the paper preset with a GPU (up to 4 at once), else the cpu preset
	@preset=$$($(PY) -m kvt.preflight $(if $(PRESET),preset=$(PRESET)) $(ARGS)) || exit $$?; \
	mkdir -p $(dir $(RUN_CONFIG)) && echo "preset: $$preset" > $(RUN_CONFIG); \
	echo "kvt: the $$preset preset: $(RUN_SNAKEMAKE) [ARGS]" >&2; \
	start=$$(date +%s); \
	$(RUN_SNAKEMAKE) $(ARGS); \
	status=$$?; \
	$(PY) -m kvt.missing_data --since $$start preset=$$preset $(ARGS); \
	exit $$status

cpu:  ## = make run PRESET=cpu: every task and variant, reduced (README: Presets)
	$(MAKE) run PRESET=cpu

smoke:  ## = make run PRESET=smoke: the whole DAG on tiny fixture data, a few minutes on 2 cores
	$(MAKE) run PRESET=smoke

test: env  ## the whole suite (CI runs it)
	$(PY) -m pytest $(ARGS)

test-fast: env  ## the suite without the tests marked slow (Snakemake runs, killed processes, every-family training)
	$(PY) -m pytest -m "not slow" $(ARGS)

lint: env  ## rule files (snakefmt, snakemake --lint) and Python (ruff check, ruff format --check)
	$(VENV)/bin/snakefmt --check workflow
	$(SNAKEMAKE) --lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

gpu-check: env  ## every family and variant trained briefly on the GPU: throughput, memory, the paper preset's GPU-hours
	$(PY) -m kvt.bench.gpu $(ARGS)

report: env  ## browsable record of the last run's tables and figures
	$(SNAKEMAKE) --report report.zip $(ARGS)

clean:  ## every result under results/ (its README stays; so does the data folder, data/)
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
