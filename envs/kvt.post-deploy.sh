#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment, from the working directory (the
# repository root): install the model package, which the rule scripts import.
set -euo pipefail
python -m pip install --no-deps -e .
