"""Snakemake script: the training-step benchmark (kvt.bench.step) -> results/bench/step.*"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

import torch  # noqa: E402
from kvt.bench.step import main  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
device = snakemake.params.device  # noqa: F821
main(["--out", snakemake.output.csv] + ([] if device == "auto" else ["--device", device]))  # noqa: F821
