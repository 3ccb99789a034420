"""Snakemake script: summary.csv -> the cost table (parameters, FLOPs, step time per variant)."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821  (injected by Snakemake)

from kvt.report.cost import write_cost  # noqa: E402
from kvt.report.summary import read_summary  # noqa: E402

out = snakemake.output  # noqa: F821
write_cost(read_summary(snakemake.input.summary), out.csv, out.md)  # noqa: F821
