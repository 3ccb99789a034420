"""Snakemake script: the attention-layer benchmark (kvt.bench.layer) -> results/bench/layer.*"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821  (injected by Snakemake)

import torch  # noqa: E402
from kvt.bench.layer import main  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
device = snakemake.params.device  # noqa: F821
main(["--out", snakemake.output.csv] + ([] if device == "auto" else ["--device", device]))  # noqa: F821
