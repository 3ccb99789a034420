"""What the Snakemake train and eval scripts do, kept in the package so the scripts stay thin."""

import importlib
import os
import sys
from pathlib import Path

import torch

from .device import pick_device


def _family(name: str):
    return importlib.import_module(f"{__package__}.experiments.{name}")


def _setup(job):
    torch.set_num_threads(max(1, int(job.threads)))
    device = pick_device(job.params.device)
    print(f"device {device}, {torch.get_num_threads()} threads, CUDA_VISIBLE_DEVICES="
          f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')}, SLURM_JOB_ID={os.environ.get('SLURM_JOB_ID', '')}",
          file=sys.stderr)
    return device


def train_job(job) -> None:
    hp = dict(job.params.hparams)
    device = _setup(job)
    run_dir = Path(job.output.model).parent
    _family(hp["family"]).train(hp, run_dir, Path(job.output.model), device)


def eval_job(job) -> None:
    device = _setup(job)
    result = _family(job.params.family).test(Path(job.input.model), Path(job.output.result), device)
    print(f"test {result}", file=sys.stderr)
