"""Snakemake script: every run's run.json and test.json -> results/summary.csv (one row per run)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from kvt.report.summary import collect, write_summary  # noqa: E402

write_summary(collect(snakemake.input.runs, snakemake.input.tests), snakemake.output.csv)
