"""Snakemake script: every run's attention.json -> the diagonal-mass and kv_pos tables and figures."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821  (injected by Snakemake)

from kvt.report.attention_terms import write_analysis  # noqa: E402

job = snakemake  # noqa: F821
write_analysis(job.input.probes, dict(job.output.items()), attentions=job.params.attentions)
