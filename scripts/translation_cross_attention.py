"""Snakemake script: the translator's cross-attention on one test sentence, one panel per variant."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.experiments.translation import cross_attention_job  # noqa: E402
from kvt.jobs import run  # noqa: E402

run(cross_attention_job, snakemake)  # noqa: F821
