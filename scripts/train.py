"""Snakemake script: train one run (any family) with the model package."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.jobs import run, train_job  # noqa: E402

run(train_job, snakemake)  # noqa: F821
