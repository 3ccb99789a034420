"""Snakemake script: summary.csv -> the paper-versus-reproduction table."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821  (injected by Snakemake)

from kvt.report.reproduction import write_reproduction  # noqa: E402
from kvt.report.summary import read_summary  # noqa: E402

out = snakemake.output  # noqa: F821
write_reproduction(read_summary(snakemake.input.summary), out.csv, out.md)  # noqa: F821
