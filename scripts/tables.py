"""Snakemake script: summary.csv -> one report group's tables (main table, per configuration, params)."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821  (injected by Snakemake)

from kvt.report.summary import read_summary  # noqa: E402
from kvt.report.tables import write_tables  # noqa: E402

out = snakemake.output  # noqa: F821
write_tables(
    read_summary(snakemake.input.summary),
    snakemake.params.group,
    out.csv,
    out.md,  # noqa: F821
    out.tex,
    out.by_config_csv,
    out.by_config_md,
    out.params_csv,
    out.params_md,
)
