"""Train and evaluate one run of a synthetic task (reverse, sort, swap, sub, copy)."""

from pathlib import Path

import torch.nn.functional as F

from ..data.synthetic import make_split
from ..jsonfiles import write_json
from ..models.synthetic import SequenceClassifier, SyntheticModelConfig
from ..runfiles import finish_record, load_weights, start_record
from ..trainer import TensorBatches, TrainConfig, Trainer, atomic_save, evaluate, seed_everything

EVAL_BATCH = 512


def model_config(hp: dict) -> SyntheticModelConfig:
    return SyntheticModelConfig(
        attention=hp["attention"], seq_len=hp["seq_len"], d_model=hp["d_model"], depth=hp["depth"],
        heads=hp["heads"], dropout=hp["dropout"], scale=hp["scale"], pos_dim=hp["pos_dim"],
        pos_per_head=hp["pos_per_head"], fused=hp["fused"])


def train_config(hp: dict) -> TrainConfig:
    return TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                       warmup_steps=hp["warmup_steps"], schedule="cosine", optimizer="adam",
                       grad_clip=hp["grad_clip"], val_per_epoch=hp["val_per_epoch"],
                       select=hp["select"])


def token_step(model, batch):
    """Per-token cross-entropy and accuracy of a batch (inputs, targets)."""
    x, y = batch
    logits = model(x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    return loss, (logits.argmax(-1) == y).sum().item(), y.numel()


def _fixed_batches(split, hp):
    x, y = make_split(hp["task"], split, hp[f"{split}_size"], hp["seq_len"], hp["seed"])
    return lambda: ((x[i:i + EVAL_BATCH], y[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH))


def train(hp: dict, run_dir: Path, model_path: Path, device, on_step=None) -> dict:
    """Train one run; write metrics.csv, last.pt, run.json and the selected weights to model_path."""
    run_dir = Path(run_dir)
    seed_everything(hp["seed"])
    model = SequenceClassifier(model_config(hp))
    n_params = sum(p.numel() for p in model.parameters())
    train_data = TensorBatches(make_split(hp["task"], "train", hp["train_size"], hp["seq_len"], hp["seed"]),
                               hp["batch_size"], hp["seed"])
    trainer = Trainer(model, train_data, _fixed_batches("val", hp), token_step, train_config(hp),
                      run_dir, device, on_step=on_step)
    record = start_record(run_dir, hp, device, n_params, previous=trainer.meta)
    trainer.meta = {k: record[k] for k in ("start_time", "resumed_at")}
    chosen = trainer.fit()
    atomic_save({"model": chosen["state"], "hparams": hp, "step": chosen["step"],
                 "select": chosen["select"]}, Path(model_path))
    result = {k: v for k, v in chosen.items() if k != "state"}
    record = finish_record(run_dir, record, selected=result, steps=trainer.step,
                           train_seconds=round(trainer.elapsed, 3))
    if not hp.get("keep_last", False):
        trainer.last_path.unlink(missing_ok=True)  # the run is complete: nothing left to resume
    return record


def test(model_path: Path, out_path: Path, device) -> dict:
    """Per-token accuracy and loss of the selected weights on the test split."""
    ckpt = load_weights(model_path)
    hp = ckpt["hparams"]
    model = SequenceClassifier(model_config(hp)).to(device)
    model.load_state_dict(ckpt["model"])
    loss, acc = evaluate(model, _fixed_batches("test", hp)(), token_step, device)
    result = {"test_acc": acc, "test_loss": loss, "test_size": hp["test_size"], "step": ckpt["step"],
              "select": ckpt["select"], "n_params": sum(p.numel() for p in model.parameters())}
    write_json(result, Path(out_path))
    return result

