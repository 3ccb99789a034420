"""Snakemake script: summary.csv -> the synthetic tables (paper table, per configuration, params)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from kvt.report.summary import read_summary  # noqa: E402
from kvt.report.tables import write_synthetic_tables  # noqa: E402

out = snakemake.output
write_synthetic_tables(read_summary(snakemake.input.summary), out.csv, out.md, out.tex,
                       out.by_config_csv, out.by_config_md, out.params_csv, out.params_md)
