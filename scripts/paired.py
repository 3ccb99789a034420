"""Snakemake script: summary.csv -> paired comparisons of the variants (table and figure)."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821  (injected by Snakemake)

from kvt.report.paired import write_paired  # noqa: E402
from kvt.report.summary import read_summary  # noqa: E402

out = snakemake.output  # noqa: F821
write_paired(
    read_summary(snakemake.input.summary),
    out.csv,
    out.md,
    out.png,
    out.pdf,  # noqa: F821
    seed=snakemake.params.seed,
)  # noqa: F821
