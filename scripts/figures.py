"""Snakemake script: summary.csv (and each run's metrics.csv) -> one figure of one task of a report group
(kind `loss`: loss against wall time; `curve`: a validation metric per epoch; `score`: the
family's metric per configuration)."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821  (injected by Snakemake)

from kvt.report.figures import write_figure  # noqa: E402
from kvt.report.summary import read_summary  # noqa: E402

p = snakemake.params  # noqa: F821
write_figure(
    read_summary(snakemake.input.summary),
    p.group,
    p.task,
    p.kind,  # noqa: F821
    snakemake.output.png,
    snakemake.output.pdf,  # noqa: F821
    column=getattr(p, "column", ""),
    label=getattr(p, "label", ""),
)
