"""Snakemake script: per-job overhead of the finished pipeline (kvt.bench.overhead)."""

import sys
from pathlib import Path

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

from kvt.bench.overhead import main  # noqa: E402

main([str(Path(snakemake.input.summary).parent), "--out", snakemake.output.csv])  # noqa: F821
