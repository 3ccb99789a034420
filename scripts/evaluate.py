"""Snakemake script: test the selected weights of one run (any family)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.jobs import eval_job, run  # noqa: E402

run(eval_job, snakemake)  # noqa: F821
