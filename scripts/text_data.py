"""Snakemake script: make one text dataset's files present and checked (staged, fetched, or
fixtures) and write its manifest."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.experiments.text_data import text_data_job  # noqa: E402
from kvt.jobs import run  # noqa: E402

run(text_data_job, snakemake)  # noqa: F821
