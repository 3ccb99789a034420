"""What the Snakemake train and eval scripts do for every family, kept in the package so the
scripts stay thin. A family's own jobs (data, features, figures) live in its runtime module."""

import os
import sys
from pathlib import Path

import torch

from . import runner
from .device import pick_device


def run(fn, job) -> None:
    """Run a job function; its error also goes to the console (stderr is the rule's log), so a
    missing data file or a NaN loss is named where Snakemake's summary is read."""
    try:
        fn(job)
    except Exception as err:
        print(f"{type(err).__name__} in rule {job.rule}: {err}", file=sys.__stderr__, flush=True)
        raise


def setup(job):
    """Threads and device of a job; logs where it runs."""
    torch.set_num_threads(max(1, int(job.threads)))
    device = pick_device(job.params.device)
    print(f"device {device}, {torch.get_num_threads()} threads, CUDA_VISIBLE_DEVICES="
          f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')}, SLURM_JOB_ID={os.environ.get('SLURM_JOB_ID', '')}",
          file=sys.stderr)
    return device


def inputs(job) -> dict:
    """The job's named inputs other than the weights (data files, features)."""
    return {k: v for k, v in job.input.items() if k not in ("model", "models")}


def train_job(job) -> None:
    hp = dict(job.params.hparams)
    device = setup(job)
    run_dir = Path(job.output.model).parent
    keep_last = bool(job.config.get("keep_last", False))  # read here, not a param: no rerun
    runner.train(hp, run_dir, Path(job.output.model), device, inputs=inputs(job), keep_last=keep_last)


def eval_job(job) -> None:
    device = setup(job)
    result = runner.test(Path(job.input.model), Path(job.output.result), device, inputs=inputs(job))
    print(f"test {result}", file=sys.stderr)
