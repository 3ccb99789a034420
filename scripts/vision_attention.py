"""Snakemake script: first-layer attention maps of one test image, one row per variant."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.experiments.vision import attention_figure_job  # noqa: E402
from kvt.jobs import run  # noqa: E402

run(attention_figure_job, snakemake)  # noqa: F821
