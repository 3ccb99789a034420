"""One run of any family, from its hparams: seed, build, train (resumable), select, test. A family's
runtime is its Experiment (kvt.experiments.base: the typed contract), found through its
declaration in kvt.families.
"""

import importlib
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .experiments.base import Experiment
from .families import family
from .families.base import ATTENTION_FILE
from .jsonfiles import write_json
from .precision import autocast
from .precision import check as check_precision
from .probe import probe
from .runfiles import finish_record, load_weights, start_record
from .trainer import (
    TrainConfig,
    Trainer,
    atomic_save,
    evaluate,
    fit_together,
    load_checkpoint,
    seed_everything,
)


def experiment(name: str) -> Experiment:
    """The Experiment of family `name`: EXPERIMENT of the runtime module its declaration names."""
    module = family(name).module
    found = getattr(importlib.import_module(module), "EXPERIMENT", None)
    if not isinstance(found, Experiment):
        raise TypeError(
            f"family {name!r}: its runtime module {module} defines no EXPERIMENT, an "
            "instance of kvt.experiments.base.Experiment"
        )
    return found


def train_config(hp: dict) -> TrainConfig:
    return TrainConfig.from_hparams(hp, **experiment(hp["family"]).train_settings(hp))


@dataclass(frozen=True)
class Options:
    """How a run computes, beside its hparams (the config's top level; recorded in run.json).
    precision: kvt.precision's fp32 | tf32 | bf16 (changes the numbers: a run's checkpoint is
    resumed only with the same precision). compile: torch.compile the model for training."""

    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self):
        check_precision(self.precision)


@dataclass
class Prepared:
    """A run set up to train: its trainer, run.json record and paths."""

    hp: dict
    trainer: Trainer
    record: dict
    model_path: Path


def prepare(
    hp: dict,
    run_dir: Path,
    model_path: Path,
    device,
    on_step=None,
    inputs=None,
    options: Options = Options(),
    label: str = "",
) -> Prepared:
    """Seed, build the model and data, and a trainer that resumes from run_dir/last.pt if there
    is one; write run.json (status running)."""
    rt, run_dir, inputs = experiment(hp["family"]), Path(run_dir), dict(inputs or {})
    hp = {**hp, **rt.data_facts(hp, inputs)}
    drop_stale_checkpoint(run_dir, hp, options)
    seed_everything(hp["seed"])
    model = rt.build_model(hp)  # before the data: the initial weights depend on the seed alone
    n_params = sum(p.numel() for p in model.parameters())
    train_data = rt.train_data(hp, inputs)
    flops = forward_flops(model, next(train_data.batches(0)), rt.step)
    if options.compile:
        model.compile()  # in place: the state_dict keeps its names
    trainer = Trainer(
        model,
        train_data,
        rt.eval_data(hp, "val", inputs),
        rt.step,
        train_config(hp),
        run_dir,
        device,
        on_step=on_step,
        select_on=rt.select_on(hp),
        val_metrics=rt.val_scorer(hp, inputs, device),
        precision=options.precision,
        label=label,
    )
    record = start_record(
        run_dir, hp, device, n_params, previous=trainer.meta, flops=flops, options=asdict(options)
    )
    trainer.meta = {
        **{k: record[k] for k in ("start_time", "resumed_at")},
        "hparams": hp,
        "options": asdict(options),
    }
    return Prepared(hp, trainer, record, Path(model_path))


def conclude(run: Prepared, chosen: dict) -> dict:
    """Write the chosen weights and the finished run.json; return the record. The weights file
    also holds the last weights (`last`) where they are not the chosen ones, and the last step
    (`last_step`), so that the eval job tests both: the reference tested its last weights."""
    weights = {
        "model": chosen["state"],
        "hparams": run.hp,
        "step": chosen["step"],
        "select": chosen["select"],
        "last_step": run.trainer.step,
    }
    if chosen["step"] != run.trainer.step:
        weights["last"] = run.trainer.last()["state"]
    atomic_save(weights, run.model_path)
    result = {k: v for k, v in chosen.items() if k != "state"}
    return finish_record(
        run.trainer.run_dir,
        run.record,
        selected=result,
        steps=run.trainer.step,
        train_seconds=round(run.trainer.elapsed, 3),
    )


def train(
    hp: dict,
    run_dir: Path,
    model_path: Path,
    device,
    on_step=None,
    inputs=None,
    keep_last: bool = False,
    options: Options = Options(),
) -> dict:
    """Train one run; write metrics.csv, last.pt, run.json and the selected weights to model_path.
    keep_last: keep last.pt after the run completes (not a hyperparameter: toggling it reruns
    nothing)."""
    run = prepare(hp, run_dir, model_path, device, on_step, inputs, options)
    record = conclude(run, run.trainer.fit())
    if not keep_last:
        run.trainer.last_path.unlink(missing_ok=True)  # the run is complete: nothing left to resume
    return record


def train_together(
    hps: list[dict],
    run_dirs: list[Path],
    model_paths: list[Path],
    device,
    on_step=None,
    inputs=None,
    keep_last: bool = False,
    options: Options = Options(),
) -> list[dict]:
    """Train several runs (the seeds of one configuration) in one process, step by step in turn
    (trainer.fit_together): each writes exactly the files, and numbers, of `train` alone. Every
    last.pt stays until all runs are done: a job killed after some runs finished resumes those at
    their end and writes their files again, without training them again."""
    runs = [
        prepare(hp, d, m, device, on_step, inputs, options, label=f"seed {hp['seed']}: ")
        for hp, d, m in zip(hps, run_dirs, model_paths)
    ]
    chosen = fit_together([run.trainer for run in runs])
    records = [conclude(run, c) for run, c in zip(runs, chosen)]
    if not keep_last:
        for run in runs:
            run.trainer.last_path.unlink(missing_ok=True)
    return records


def forward_flops(model, batch, step_fn) -> int:
    """Matmul FLOPs of one forward pass (and loss) on the first example of a batch, from the shapes
    seen by forward hooks: every nn.Linear, and every attention's products (scores and weighted
    sum on its manual path, and kv_pos's n x n positional bias). torch's FlopCounterMode gives the
    same count (tested), but its first use imports torch._dynamo: 2 s of every job."""
    from torch import nn

    from .attention import SelfAttention

    total = 0

    def linear(module, args, out):
        nonlocal total
        total += 2 * out.numel() * module.in_features

    def attention(module, args, kwargs, out):
        nonlocal total
        x = args[0]
        context = kwargs.get("context", args[3] if len(args) > 3 else None)
        b, m, _ = x.shape
        n = m if context is None else context.shape[1]
        total += 2 * 2 * b * m * n * module.d_model  # q k^T and A v, over all heads
        if hasattr(module, "map_pos"):
            total += 2 * m * n * module.map_pos.in_features * module.map_pos.out_features

    hooks = [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, nn.Linear)]
    hooks += [
        m.register_forward_hook(attention, with_kwargs=True)
        for m in model.modules()
        if isinstance(m, SelfAttention)
    ]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            step_fn(model, tuple(t[:1] for t in batch))
    finally:
        for h in hooks:
            h.remove()
        model.train(training)
    return total


def drop_stale_checkpoint(run_dir: Path, hp: dict, options: Options = Options()) -> None:
    """A last.pt written with other hparams or another precision (the configuration changed after
    a run was killed) belongs to another run: set it aside as last.stale.pt and start afresh,
    never resume it."""
    last = Path(run_dir) / "last.pt"
    if not last.exists():
        return
    meta = load_checkpoint(last).get("meta", {})
    old = {**meta.get("hparams", hp), "precision": meta.get("options", {}).get("precision", "fp32")}
    hp = {**hp, "precision": options.precision}
    if old != hp:
        changed = sorted(k for k in set(old) | set(hp) if old.get(k) != hp.get(k))
        last.replace(last.with_name("last.stale.pt"))
        print(
            f"{last} was written with other hparams ({', '.join(changed)}): starting afresh; "
            "the old checkpoint is kept as last.stale.pt",
            file=sys.stderr,
        )


# What names a run (its folder); named first when a checkpoint belongs to another run.
RUN_KEYS = ("family", "task", "cfg", "attention", "seed")


def check_owner(path: Path, recorded: dict, expected: dict) -> None:
    """A weights file must be the run's that reads it: every hyperparameter the job expects equal
    to the one the file records (the file may record more: data facts such as a vocabulary).
    A file copied from another run's folder would otherwise report that run's numbers here."""
    differ = [k for k in expected if recorded.get(k) != expected[k]]
    if not differ:
        return

    def name(hp):
        return "/".join(str(hp.get(k)) for k in RUN_KEYS)

    detail = ", ".join(f"{k}={recorded.get(k)!r} (expected {expected[k]!r})" for k in differ[:6])
    raise RuntimeError(
        f"{path} belongs to another run: it records {name(recorded)}, this job is for "
        f"{name(expected)}; differing: {detail}{' ...' if len(differ) > 6 else ''}. Delete it "
        "and run this run's train job again."
    )


def load_model(model_path: Path, device, expect: dict | None = None):
    """(model in eval mode with the selected weights, its checkpoint). expect: the hparams of the
    run the caller reads it for (check_owner)."""
    ckpt = load_weights(model_path)
    if expect is not None:
        check_owner(Path(model_path), ckpt["hparams"], expect)
    model = experiment(ckpt["hparams"]["family"]).build_model(ckpt["hparams"]).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def measure(model, hp: dict, inputs: dict, device, out_dir: Path, precision: str) -> dict:
    """{name: value} of the family's test metrics of `model`; test_extras writes into out_dir."""
    rt = experiment(hp["family"])
    metrics = evaluate(model, rt.eval_data(hp, "test", inputs)(), rt.step, device, precision)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), autocast(precision, device):
        metrics.update(rt.test_extras(model, hp, inputs, device, Path(out_dir)))
    return metrics


def test(
    model_path: Path,
    out_path: Path,
    device,
    inputs=None,
    precision: str = "fp32",
    expect: dict | None = None,
) -> dict:
    """The family's test metrics of the selected weights (test_<name>, their files and the
    attention probe's ATTENTION_FILE beside out_path) and of the last weights (last_test_<name>,
    their files discarded), written to out_path (test.json). Where the selected weights are the
    last, the last ones are not tested twice: last_test_<name> repeats test_<name>. A weights
    file without `last_step` (written before the last weights were kept) gets no
    last_test_<name>. expect: the run's hparams (the
    eval job's), checked against the file's (check_owner)."""
    model, ckpt = load_model(model_path, device, expect)
    hp, inputs = ckpt["hparams"], dict(inputs or {})
    metrics = measure(model, hp, inputs, device, Path(out_path).parent, precision)
    attention = probe(model, experiment(hp["family"]), hp, inputs, device)
    write_json(attention, Path(out_path).parent / ATTENTION_FILE)
    last = {}
    if "last" in ckpt:
        model.load_state_dict(ckpt["last"])
        with tempfile.TemporaryDirectory() as tmp:
            last = measure(model, hp, inputs, device, Path(tmp), precision)
    elif "last_step" in ckpt:
        last = metrics
    result = {
        **{f"test_{k}": v for k, v in metrics.items()},
        **{f"last_test_{k}": v for k, v in last.items()},
        "test_size": hp.get("test_size"),
        "step": ckpt["step"],
        "select": ckpt["select"],
        **({"last_step": ckpt["last_step"]} if last else {}),
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    write_json(result, Path(out_path))
    return result
