"""The training loop shared by the families: resumable, validated on a fixed schedule.

Per run folder it writes `metrics.csv` (appended and flushed at every validation), `last.pt`
(everything needed to resume: model, optimizer, scheduler, step, RNG states, data position, the
best weights so far) and, at the end, the selected weights. A run killed at any point and started
again resumes from `last.pt` and, on CPU, ends with the same metrics as an uninterrupted run: the
data order is a function of (seed, epoch), and every RNG state is restored.
"""

import csv
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

METRIC_FIELDS = ["step", "epoch", "wall_time", "train_loss", "val_loss", "val_acc", "lr"]
CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine (to 0 over all steps after the warm-up) | constant
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0: no clipping
    val_per_epoch: int = 1
    select: str = "best"  # best (on val accuracy) | last


class TensorBatches:
    """Mini-batches of in-memory tensors, shuffled per epoch by a generator seeded with (seed, epoch),
    so any data position (epoch, batch index) can be recreated after a restart. Drops the last
    partial batch."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int):
        self.tensors, self.batch_size, self.seed = tensors, batch_size, seed
        self.steps_per_epoch = len(tensors[0]) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(tensors[0])} training examples make no batch of {batch_size}")

    def epoch(self, epoch: int, start: int = 0):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.tensors[0]), generator=gen)
        for i in range(start, self.steps_per_epoch):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up over cfg.warmup_steps, then constant or cosine to 0 at total_steps."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def atomic_save(obj, path: Path) -> None:
    """torch.save through a temporary file, so a kill mid-write never leaves a corrupt file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated or foreign file: say which, never train over it silently
        raise RuntimeError(f"cannot read checkpoint {path}: {err}. Delete it to start this run "
                           "from scratch.") from err
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise RuntimeError(f"{path} is not a checkpoint of this version ({CHECKPOINT_VERSION}); "
                           "delete it to start this run from scratch")
    return ckpt


class Progress:
    """A one-line bar on a terminal; silent otherwise (the validation lines go to the log)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.time()

    def update(self, step: int, loss: float) -> None:
        if not self.live or (step % 10 and step != self.total):
            return
        rate = step / max(1e-9, time.time() - self.t0)
        bar = "#" * int(30 * step / self.total)
        self.stream.write(f"\r[{bar:<30}] {step}/{self.total} loss {loss:.4f} {rate:.1f} it/s")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.live else "") + text + "\n")
        self.stream.flush()


@torch.no_grad()
def evaluate(model: nn.Module, batches, step_fn, device) -> tuple[float, float]:
    """(mean loss, accuracy) over `batches`, with the model in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for batch in batches:
        loss, n_correct, n = step_fn(model, tuple(t.to(device) for t in batch))
        loss_sum += loss.item() * n
        correct += n_correct
        count += n
    model.train(was_training)
    return loss_sum / count, correct / count


class Trainer:
    """Trains `model` on `train` (a TensorBatches-like object) and validates on `val_batches`.

    Resumes from run_dir/last.pt when it exists (`resumed` says so; `meta` is restored).

    step_fn(model, batch) -> (mean loss tensor, number correct, number of items).
    on_step(step): called after every optimizer step (tests use it to kill a run).
    """

    def __init__(self, model: nn.Module, train, val_batches: Callable[[], object], step_fn,
                 cfg: TrainConfig, run_dir: Path, device, on_step=None):
        self.model, self.train, self.val_batches = model.to(device), train, val_batches
        self.step_fn, self.cfg, self.device, self.on_step = step_fn, cfg, device, on_step
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.last_path = self.run_dir / "last.pt"
        self.metrics_path = self.run_dir / "metrics.csv"
        self.total_steps = cfg.epochs * train.steps_per_epoch
        spe, v = train.steps_per_epoch, max(1, min(cfg.val_per_epoch, train.steps_per_epoch))
        self.val_points = {round(k * spe / v) for k in range(1, v + 1)}  # batch counts within an epoch
        opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, self.total_steps))
        self.step, self.epoch, self.batch_in_epoch, self.elapsed = 0, 0, 0, 0.0
        self.best = {"val_acc": -1.0, "val_loss": math.inf, "step": -1, "state": None}
        self.loss_sum, self.loss_count = 0.0, 0
        self.rows: list[dict] = []  # every metric row so far, also kept in the checkpoint
        self.meta: dict = {}  # caller's run record (start time, resumes), kept in the checkpoint
        self.log = Progress(self.total_steps)
        self.saved_step = None  # step of the checkpoint on disk
        self.resumed = self._resume()

    # -- persistence -------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"version": CHECKPOINT_VERSION, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "elapsed": self.elapsed, "best": self.best, "rng": rng_state(),
                "loss_sum": self.loss_sum, "loss_count": self.loss_count, "rows": self.rows,
                "meta": self.meta}

    def _resume(self) -> bool:
        if not self.last_path.exists():
            return False
        ckpt = load_checkpoint(self.last_path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        for key in ("step", "epoch", "batch_in_epoch", "elapsed", "best", "loss_sum", "loss_count",
                    "rows", "meta"):
            setattr(self, key, ckpt[key])
        set_rng_state(ckpt["rng"])
        self.saved_step = self.step
        # The checkpoint holds every metric row so far: metrics.csv may be gone (Snakemake deletes
        # the outputs of a failed job) or hold rows written after the checkpoint.
        self._write_metrics(self.rows, mode="w")
        return True

    def _write_metrics(self, rows: list[dict], mode: str = "a") -> None:
        new = mode == "w" or not self.metrics_path.exists()
        with open(self.metrics_path, mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())

    # -- loop --------------------------------------------------------------------------------
    def _validate(self) -> None:
        val_loss, val_acc = evaluate(self.model, self.val_batches(), self.step_fn, self.device)
        train_loss = self.loss_sum / self.loss_count if self.loss_count else float("nan")
        self.loss_sum, self.loss_count = 0.0, 0
        row = {"step": self.step, "epoch": round(self.step / self.train.steps_per_epoch, 4),
               "wall_time": round(self.elapsed, 3), "train_loss": train_loss, "val_loss": val_loss,
               "val_acc": val_acc, "lr": self.optimizer.param_groups[0]["lr"]}
        self.rows.append(row)
        self._write_metrics([row])
        if val_acc > self.best["val_acc"] or (val_acc == self.best["val_acc"] and val_loss < self.best["val_loss"]):
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = {"val_acc": val_acc, "val_loss": val_loss, "step": self.step, "state": state}
        self.log.message(f"step {self.step}/{self.total_steps} epoch {row['epoch']:.2f} "
                         f"train {train_loss:.4f} val {val_loss:.4f} acc {val_acc:.4f} "
                         f"({self.elapsed:.0f}s)")
        atomic_save(self._state(), self.last_path)
        self.saved_step = self.step

    def fit(self) -> dict:
        """Train to the end (from the checkpoint if resumed); return the selected weights."""
        if self.resumed:
            self.log.message(f"resuming from {self.last_path} at step {self.step}")
        else:
            self.metrics_path.unlink(missing_ok=True)
            self._validate()  # step 0: the untrained model, the start of every curve
        self.model.train()
        while self.epoch < self.cfg.epochs:
            tick = time.time()
            for batch in self.train.epoch(self.epoch, self.batch_in_epoch):
                loss = self._train_step(batch)
                self.batch_in_epoch += 1
                self.elapsed += time.time() - tick
                tick = time.time()
                self.log.update(self.step, loss)
                if self.batch_in_epoch in self.val_points:
                    if self.batch_in_epoch == self.train.steps_per_epoch:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    self._validate()
                    self.model.train()
                    tick = time.time()
                if self.on_step is not None:
                    self.on_step(self.step)
            if self.batch_in_epoch == self.train.steps_per_epoch:  # no validation at the epoch end
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        return self.selected()

    def _train_step(self, batch) -> float:
        batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
        loss, _, _ = self.step_fn(self.model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at step {self.step + 1}, epoch "
                f"{self.epoch}; the last good checkpoint (step {self.saved_step}) stays in "
                f"{self.last_path}. Lower the learning rate or check the data.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        value = loss.item()
        self.loss_sum += value
        self.loss_count += 1
        return value

    def selected(self) -> dict:
        """The weights chosen by cfg.select, with the step and validation scores they had."""
        if self.cfg.select == "last":
            state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            return {"state": state, "step": self.step, "select": "last"}
        return {"state": self.best["state"], "step": self.best["step"], "select": "best",
                "val_acc": self.best["val_acc"], "val_loss": self.best["val_loss"]}
