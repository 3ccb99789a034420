"""Snakemake script: the cached ResNet-34 features of the set-anomaly task."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.experiments.anomaly import features_job  # noqa: E402
from kvt.jobs import run  # noqa: E402

run(features_job, snakemake)  # noqa: F821
