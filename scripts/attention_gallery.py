"""Snakemake script: one task's attention gallery, every variant's maps on one test example."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.gallery import gallery_job  # noqa: E402
from kvt.jobs import run  # noqa: E402

run(gallery_job, snakemake)  # noqa: F821
