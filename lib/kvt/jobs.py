"""What the Snakemake train and eval scripts do for every family, kept in the package so the
scripts stay thin. A family's own jobs (data, features, figures) live in its runtime module."""

import os
import sys
from pathlib import Path

import torch

from . import runner
from .device import pick_device
from .precision import configure as configure_precision


def run(fn, job) -> None:
    """Run a job function; its error also goes to the console (stderr is the rule's log), so a
    missing data file or a NaN loss is named where Snakemake's summary is read."""
    try:
        fn(job)
    except Exception as err:
        print(f"{type(err).__name__} in rule {job.rule}: {err}", file=sys.__stderr__, flush=True)
        raise


def setup(job):
    """Threads, device and precision of a job; logs where it runs."""
    torch.set_num_threads(max(1, int(job.threads)))
    device = pick_device(job.params.device, slots=int(job.config.get("gpu_slots", 1)))
    configure_precision(job.params.get("precision", "fp32"))
    print(
        f"device {device}, {torch.get_num_threads()} threads, CUDA_VISIBLE_DEVICES="
        f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')}, SLURM_JOB_ID={os.environ.get('SLURM_JOB_ID', '')}",
        file=sys.stderr,
    )
    return device


def inputs(job) -> dict:
    """The job's named inputs other than the weights (data files, features)."""
    return {k: v for k, v in job.input.items() if k not in ("model", "models")}


def train_job(job) -> None:
    """One run, or (a list of hparams: the rule's `joint_seeds` form) several trained together."""
    device = setup(job)
    # keep_last and compile are read here, not params: toggling them reruns nothing
    keep_last = bool(job.config.get("keep_last", False))
    options = runner.Options(
        precision=job.params.precision, compile=bool(job.config.get("compile"))
    )
    if isinstance(job.params.hparams, list):
        models = [Path(m) for m in job.output.model]
        runner.train_together(
            [dict(hp) for hp in job.params.hparams],
            [m.parent for m in models],
            models,
            device,
            inputs=inputs(job),
            keep_last=keep_last,
            options=options,
        )
        return
    model = Path(job.output.model)
    runner.train(
        dict(job.params.hparams),
        model.parent,
        model,
        device,
        inputs=inputs(job),
        keep_last=keep_last,
        options=options,
    )


def eval_job(job) -> None:
    """Test one run's weights, or (lists: the rule's `joint_seeds` form) those of several runs."""
    device = setup(job)
    models, results, runs = job.input.model, job.output.result, job.params.hparams
    if isinstance(models, list):
        triples = zip(models, results, runs)
    else:
        triples = [(models, results, runs)]
    for model, out, hp in triples:
        result = runner.test(
            Path(model),
            Path(out),
            device,
            inputs=inputs(job),
            precision=job.params.precision,
            expect=dict(hp),  # the weights must be this run's (a copied file is refused)
        )
        print(f"test {model}: {result}", file=sys.stderr)
