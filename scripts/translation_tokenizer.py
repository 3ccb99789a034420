"""Snakemake script: learn the translation task's subword tokenizer from its training split."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.experiments.translation import tokenizer_job  # noqa: E402
from kvt.jobs import run  # noqa: E402

run(tokenizer_job, snakemake)  # noqa: F821
