"""Snakemake script: summary.csv (and each run's metrics.csv) -> the loss and accuracy figures of
one synthetic task."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from kvt.report.figures import write_task_figures  # noqa: E402
from kvt.report.summary import read_summary  # noqa: E402

out = snakemake.output
write_task_figures(read_summary(snakemake.input.summary), snakemake.params.task,
                   out.loss_png, out.loss_pdf, out.acc_png, out.acc_pdf)
