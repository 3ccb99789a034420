"""One run of any family, from its hparams: seed, build, train (resumable), select, test.

A family's runtime module (named by its declaration in kvt.families) provides:
    build_model(hp) -> nn.Module
    train_data(hp, inputs) -> object with batches(start_step) (and steps_per_epoch for epochs)
    eval_data(hp, split, inputs) -> zero-argument callable yielding the fixed batches of a split
    step(model, batch) -> {"loss": mean loss tensor, "count": items, name: sum over items, ...}
    SELECT_ON = ("val_acc", "max")      # the validation metric that selects weights
    TRAIN = {"optimizer": ..., ...}     # fixed TrainConfig fields; the rest come from hp by name
`inputs` are the paths a rule hands the job (data files, cached features); hparams hold no paths
that are not config values.
"""

import importlib
from pathlib import Path

from .families import family
from .jsonfiles import write_json
from .runfiles import finish_record, load_weights, start_record
from .trainer import Trainer, TrainConfig, atomic_save, evaluate, seed_everything


def runtime(name: str):
    """The runtime module of family `name`."""
    return importlib.import_module(family(name).runtime)


def train_config(hp: dict) -> TrainConfig:
    return TrainConfig.from_hparams(hp, **runtime(hp["family"]).TRAIN)


def train(hp: dict, run_dir: Path, model_path: Path, device, on_step=None, inputs=None,
          keep_last: bool = False) -> dict:
    """Train one run; write metrics.csv, last.pt, run.json and the selected weights to model_path.
    keep_last: keep last.pt after the run completes (not a hyperparameter: toggling it reruns
    nothing)."""
    rt, run_dir, inputs = runtime(hp["family"]), Path(run_dir), dict(inputs or {})
    seed_everything(hp["seed"])
    model = rt.build_model(hp)  # before the data: the initial weights depend on the seed alone
    n_params = sum(p.numel() for p in model.parameters())
    trainer = Trainer(model, rt.train_data(hp, inputs), rt.eval_data(hp, "val", inputs), rt.step,
                      train_config(hp), run_dir, device, on_step=on_step, select_on=rt.SELECT_ON)
    record = start_record(run_dir, hp, device, n_params, previous=trainer.meta)
    trainer.meta = {k: record[k] for k in ("start_time", "resumed_at")}
    chosen = trainer.fit()
    atomic_save({"model": chosen["state"], "hparams": hp, "step": chosen["step"],
                 "select": chosen["select"]}, Path(model_path))
    result = {k: v for k, v in chosen.items() if k != "state"}
    record = finish_record(run_dir, record, selected=result, steps=trainer.step,
                           train_seconds=round(trainer.elapsed, 3))
    if not keep_last:
        trainer.last_path.unlink(missing_ok=True)  # the run is complete: nothing left to resume
    return record


def load_model(model_path: Path, device):
    """(model in eval mode with the selected weights, its checkpoint)."""
    ckpt = load_weights(model_path)
    model = runtime(ckpt["hparams"]["family"]).build_model(ckpt["hparams"]).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def test(model_path: Path, out_path: Path, device, inputs=None) -> dict:
    """The family's test metrics of the selected weights, written to out_path (test.json)."""
    model, ckpt = load_model(model_path, device)
    hp, inputs = ckpt["hparams"], dict(inputs or {})
    rt = runtime(hp["family"])
    metrics = evaluate(model, rt.eval_data(hp, "test", inputs)(), rt.step, device)
    result = {**{f"test_{k}": v for k, v in metrics.items()}, "test_size": hp.get("test_size"),
              "step": ckpt["step"], "select": ckpt["select"],
              "n_params": sum(p.numel() for p in model.parameters())}
    write_json(result, Path(out_path))
    return result
