"""The training loop shared by the families: resumable, step-based, validated on a fixed schedule.

The trainer knows steps, named metrics and a selection rule, nothing of tasks. A family gives its
length in epochs (converted with its data's steps per epoch) or in iterations, its validation
points (k per epoch, or every n steps), its optimizer and learning-rate schedule, and the
validation metric that selects the weights with its direction (accuracy up, loss down).

Per run folder it writes `metrics.csv` (appended and flushed at every validation), `last.pt`
(everything needed to resume: model, optimizer, scheduler, step, RNG states, the best weights so
far, the metric rows) and returns the selected weights. A run killed at any point and started
again resumes from `last.pt` and, on CPU, ends with the same metrics as an uninterrupted run: the
training batch of a step (its order and augmentation) is a function of (seed, step), and every
RNG state is restored.
"""

import contextlib
import csv
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .precision import autocast
from .precision import check as check_precision
from .seeds import EPOCH_STRIDE, check_seed, derived

CHECKPOINT_VERSION = 3  # 3: plain types only, loaded with weights_only=True
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "noam", "one_cycle")


@dataclass
class TrainConfig:
    epochs: int | None = None  # length in epochs of the training data ...
    batch_size: int = 1
    lr: float = 1e-3
    warmup_steps: int = 0
    schedule: str = "cosine"  # constant | cosine (to 0 at the last step) | noam (inverse sqrt)
    # | one_cycle (fastai's fit_one_cycle: one_cycle_factor, and the momentum cycle `moms`)
    optimizer: str = "adam"  # adam | adamw
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0: no clipping
    val_per_epoch: int | None = 1  # validations per epoch ...
    select: str = "best"  # best (on the selection metric) | last
    iterations: int | None = None  # ... or in optimizer steps
    val_every: int | None = None  # ... or every n steps (and at the last)
    pct_start: float = 0.25  # one_cycle: the share of the steps that warm up
    div: float = 25.0  # one_cycle: the first rate is lr / div
    div_final: float = 1e5  # one_cycle: the last rate is lr / div_final
    moms: tuple[float, ...] | None = None  # (start, middle, end) of Adam's beta1, cycled as the lr
    decay_norm_bias: bool = True  # False: no weight decay on biases and norm layers (fastai's)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if (self.epochs is None) == (self.iterations is None):
            raise ValueError("give the training length as epochs or as iterations (exactly one)")
        self.betas = tuple(self.betas)
        if self.moms is not None:
            self.moms = tuple(self.moms)
            if len(self.moms) != 3:
                raise ValueError(f"moms must be (start, middle, end), got {self.moms}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start}")

    @classmethod
    def from_hparams(cls, hp: dict, **fixed) -> "TrainConfig":
        """The fields present in a run's hparams (same names), with a family's fixed choices."""
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in hp.items() if k in names}, **fixed})


class TensorBatches:
    """Mini-batches of in-memory tensors, shuffled per epoch by a generator seeded with (seed, epoch),
    so the batch of any step can be recreated after a restart. Drops the last partial batch."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int):
        self.tensors, self.batch_size, self.seed = tensors, batch_size, seed
        self.steps_per_epoch = len(tensors[0]) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(tensors[0])} training examples make no batch of {batch_size}")

    def to(self, device) -> "TensorBatches":
        """Keep the tensors on `device` (the trainer calls this): a step then indexes them there
        instead of copying a batch from the host. The order is drawn on the CPU as before, so the
        batches are the same on every device."""
        self.tensors = tuple(t.to(device) for t in self.tensors)
        return self

    def epoch(self, epoch: int, start: int = 0):
        gen = torch.Generator().manual_seed(derived(self.seed, EPOCH_STRIDE, epoch))
        order = torch.randperm(len(self.tensors[0]), generator=gen).to(self.tensors[0].device)
        for i in range(start, self.steps_per_epoch):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)

    def batches(self, start_step: int = 0):
        """The batches of steps start_step, start_step + 1, ... (endless)."""
        epoch, start = divmod(start_step, self.steps_per_epoch)
        while True:
            yield from self.epoch(epoch, start)
            epoch, start = epoch + 1, 0


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Factor of cfg.lr at a step (0 for the first optimizer step):
    - cosine: UvA tutorial 6's CosineWarmupScheduler, which the reference used: a half cosine from
      1 at step 0 to 0 at total_steps, multiplied during the warm-up by step / warmup_steps (so the
      first step's rate is 0, and the warm-up is not added before the cosine);
    - constant: a linear rise (step + 1) / warmup_steps, then 1;
    - noam: the same rise, then Noam's inverse square root (peak cfg.lr at the end of the warm-up);
    - one_cycle: fastai's fit_one_cycle (one_cycle_factor; warmup_steps unused)."""
    cycle = one_cycle_factor(cfg, total_steps)

    def factor(step: int) -> float:
        if cfg.schedule == "cosine":
            ramp = min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps else 1.0
            return ramp * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, total_steps))))
        if cfg.schedule == "one_cycle":
            return cycle(step)
        if cfg.schedule == "noam":
            return min(
                (step + 1) / max(1, cfg.warmup_steps),
                math.sqrt(max(1, cfg.warmup_steps) / (step + 1)),
            )
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return 1.0

    return factor


def cos_anneal(start: float, end: float, pos: float) -> float:
    """fastai's SchedCos: from start at pos 0 to end at pos 1 along a half cosine."""
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def combined_cos(pct: float, start: float, middle: float, end: float, pos: float) -> float:
    """fastai's combined_cos at pos in [0, 1]: cos_anneal start -> middle over [0, pct], then
    middle -> end over [pct, 1] (fastai computes the phase's position in float32; here float64,
    a difference of order 1e-7 relative)."""
    if pos < pct:
        return cos_anneal(start, middle, pos / pct)
    return cos_anneal(middle, end, min(1.0, (pos - pct) / (1 - pct)))


def one_cycle_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """fastai's fit_one_cycle as a factor of cfg.lr: its ParamScheduler sets the rate before
    each batch at pos = (batches done) / total_steps, so the first step's rate is lr / div, the
    peak lr falls at pct_start of the steps, and the rate anneals towards lr / div_final."""
    return lambda step: combined_cos(
        cfg.pct_start, 1 / cfg.div, 1.0, 1 / cfg.div_final, step / max(1, total_steps)
    )


def momentum(cfg: TrainConfig, total_steps: int) -> Callable[[int], float] | None:
    """Adam's beta1 at a step: fastai's momentum cycle (moms: start, middle, end) on the one-cycle
    positions, or None where cfg.moms is None (beta1 stays cfg.betas[0])."""
    if cfg.moms is None:
        return None
    return lambda step: combined_cos(cfg.pct_start, *cfg.moms, step / max(1, total_steps))


NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """The optimizer's parameter groups: one, or (decay_norm_bias False, fastai's wd_bn_bias)
    the weights with cfg.weight_decay and every norm layer's parameters and every bias without."""
    params = list(model.parameters())
    if cfg.decay_norm_bias:
        return [{"params": params}]
    exempt = set()
    for module in model.modules():
        if isinstance(module, NORM_LAYERS):
            exempt.update(id(p) for p in module.parameters(recurse=False))
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            exempt.add(id(bias))
    return [
        {"params": [p for p in params if id(p) not in exempt]},
        {"params": [p for p in params if id(p) in exempt], "weight_decay": 0.0},
    ]


def rng_state() -> dict:
    """Every RNG's state in types torch.load(weights_only=True) accepts (tensors, tuples, ints)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    check_seed(seed)
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
        # weights_only: a checkpoint is data, never code to run (an older format is refused here)
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, foreign or older file: say which, never train over it
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if code:
            detail = f"it holds a {code.group(1)} object, not plain data"
        elif "weights_only" in str(err) or "Weights only" in str(err):
            # PyTorch's message goes on to suggest weights_only=False, which would run the
            # file's code: never pass that advice on
            detail = "it is truncated, or not a PyTorch file of plain data"
        else:
            detail = str(err).splitlines()[0]
        raise RuntimeError(
            f"cannot read checkpoint {path} (a checkpoint of this version "
            f"({CHECKPOINT_VERSION}) holds tensors and plain data only): {detail}. "
            "Delete it and run its train job again (the run starts from scratch)."
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise RuntimeError(
            f"{path} is not a checkpoint of this version ({CHECKPOINT_VERSION}); "
            "delete it to start this run from scratch"
        )
    return ckpt


class Progress:
    """A one-line bar on a terminal; silent otherwise (the validation lines go to the log)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self.t0 = time.time()

    def update(self, step: int, loss) -> None:
        """loss: a number or a 0-d tensor, read only when the bar is drawn (every 10 steps)."""
        if not self.live or (step % 10 and step != self.total):
            return
        rate = step / max(1e-9, time.time() - self.t0)
        bar = "#" * int(30 * step / self.total)
        self.stream.write(
            f"\r[{bar:<30}] {step}/{self.total} loss {float(loss):.4f} {rate:.1f} it/s"
        )
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.live else "") + text + "\n")
        self.stream.flush()


@torch.no_grad()
def evaluate(
    model: nn.Module, batches, step_fn, device, precision: str = "fp32"
) -> dict[str, float]:
    """{metric: value} over `batches`, with the model in eval mode. step_fn returns `loss` (the
    batch mean), `count` (items in the batch) and named sums over the items (e.g. `acc`: the
    number correct); loss becomes the item-weighted mean, every sum a mean per item."""
    was_training = model.training
    model.eval()
    loss_sum, count, sums = 0.0, 0, {}
    for batch in batches:
        with autocast(precision, device):
            out = step_fn(model, tuple(t.to(device) for t in batch))
        n = int(out["count"])
        loss_sum += out["loss"].item() * n
        count += n
        for name, value in out.items():
            if name not in ("loss", "count"):
                sums[name] = sums.get(name, 0) + (value.item() if torch.is_tensor(value) else value)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluation on an empty set")
    return {"loss": loss_sum / count, **{name: s / count for name, s in sums.items()}}


class Trainer:
    """Trains `model` on `train` (an object with `batches(start_step)` and, for a length in
    epochs, `steps_per_epoch`) and validates on `val_batches()`.

    Resumes from run_dir/last.pt when it exists (`resumed` says so; `meta` is restored).
    step_fn(model, batch) -> {"loss": mean loss tensor, "count": items, name: sum, ...}.
    select_on: (validation column, "max" or "min"): the weights kept for `select: best`; ties go
    to the lower validation loss. on_step(step): called after every optimizer step (tests use it).
    val_metrics(model) -> {name: value}: validation metrics that are not sums over batches (BLEU of
    decoded sentences), computed in eval mode without gradients and logged as val_<name>.
    precision: kvt.precision's name (fp32, tf32, bf16) for the forward passes. label: a prefix of
    the log lines (the seed, when several runs share one log).

    `fit()` trains to the end. `start()`, `advance()` (one step, and a validation when one is due)
    and `done` let `fit_together` interleave several trainers step by step.
    """

    def __init__(
        self,
        model: nn.Module,
        train,
        val_batches: Callable[[], object],
        step_fn,
        cfg: TrainConfig,
        run_dir: Path,
        device,
        on_step=None,
        select_on: tuple[str, str] = ("val_acc", "max"),
        val_metrics=None,
        precision: str = "fp32",
        label: str = "",
    ):
        self.model, self.train, self.val_batches = model.to(device), train, val_batches
        if hasattr(train, "to"):
            train.to(device)  # data held in memory live on the device: no copy per step
        self.precision, self.label = check_precision(precision), label
        self.val_metrics = val_metrics
        self.step_fn, self.cfg, self.device, self.on_step = (
            step_fn,
            cfg,
            torch.device(device),
            on_step,
        )
        if select_on[1] not in ("max", "min"):
            raise ValueError(f"select_on direction must be max or min, got {select_on[1]!r}")
        self.select_on = select_on
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.last_path = self.run_dir / "last.pt"
        self.metrics_path = self.run_dir / "metrics.csv"
        self.spe = getattr(train, "steps_per_epoch", None)
        self.total_steps, self.val_steps = self._schedule()
        opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(
            param_groups(model, cfg),
            lr=cfg.lr,
            betas=cfg.betas,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg, self.total_steps)
        )
        self.momentum = momentum(cfg, self.total_steps)
        self.step, self.elapsed = 0, 0.0
        self.best = {"step": -1, "state": None, "metrics": None}
        # Summed on the device (float64: as Python floats summed the values), read at validations
        # only: the training step never waits for the device.
        self.loss_sum, self.loss_count = self._zero(), 0
        self._bad_step = torch.tensor(-1, device=device)  # first step with a non-finite loss
        self._bad_loss = torch.tensor(0.0, device=device)
        self.rows: list[dict] = []  # every metric row so far, also kept in the checkpoint
        self.meta: dict = {}  # caller's run record (start time, resumes), kept in the checkpoint
        self.log = Progress(self.total_steps)
        self.saved_step = None  # step of the checkpoint on disk
        self.resumed = self._resume()
        self.rng = rng_state()  # this run's RNG streams, swapped in by fit_together

    def _schedule(self) -> tuple[int, set[int]]:
        """Total steps and the steps after which to validate (step 0 is validated too)."""
        cfg = self.cfg
        if cfg.epochs is not None:
            if not self.spe:
                raise ValueError("a length in epochs needs training data with steps_per_epoch")
            total = cfg.epochs * self.spe
            v = max(1, min(cfg.val_per_epoch or 1, self.spe))
            points = {round(k * self.spe / v) for k in range(1, v + 1)}  # batch counts in an epoch
            return total, {e * self.spe + p for e in range(cfg.epochs) for p in points}
        total = cfg.iterations
        every = cfg.val_every or total
        return total, set(range(every, total + 1, every)) | {total}

    # -- persistence -------------------------------------------------------------------------
    def _zero(self) -> torch.Tensor:
        dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        return torch.zeros((), dtype=dtype, device=self.device)

    def _state(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "best": self.best,
            "rng": rng_state(),
            "loss_sum": float(self.loss_sum),
            "loss_count": self.loss_count,
            "rows": self.rows,
            "meta": self.meta,
        }

    def _resume(self) -> bool:
        if not self.last_path.exists():
            return False
        ckpt = load_checkpoint(self.last_path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        for key in ("step", "elapsed", "best", "loss_sum", "loss_count", "rows", "meta"):
            setattr(self, key, ckpt[key])
        self.loss_sum = self._zero() + self.loss_sum
        set_rng_state(ckpt["rng"])
        self.saved_step = self.step
        # The checkpoint holds every metric row so far: metrics.csv may be gone (Snakemake deletes
        # the outputs of a failed job) or hold rows written after the checkpoint.
        self._write_metrics(self.rows, mode="w")
        return True

    def _write_metrics(self, rows: list[dict], mode: str = "a") -> None:
        if not rows:
            return
        new = mode == "w" or not self.metrics_path.exists()
        with open(self.metrics_path, mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())

    # -- loop --------------------------------------------------------------------------------
    def _better(self, metrics: dict) -> bool:
        if self.best["metrics"] is None:
            return True
        name, direction = self.select_on
        new, old = metrics[name], self.best["metrics"][name]
        if new != old:
            return new > old if direction == "max" else new < old
        return name != "val_loss" and metrics["val_loss"] < self.best["metrics"]["val_loss"]

    def _check_finite(self) -> None:
        """Stop on the first non-finite training loss since the last check (one read of the device
        per validation), before a checkpoint could keep the weights it spoiled."""
        bad = int(self._bad_step)
        if bad < 0:
            return
        epoch = f", epoch {(bad - 1) // self.spe}" if self.spe else ""
        raise FloatingPointError(
            f"non-finite training loss ({float(self._bad_loss)}) at step {bad}{epoch}; the last "
            f"good checkpoint (step {self.saved_step}) stays in {self.last_path}. Lower the "
            "learning rate or check the data."
        )

    def _validate(self) -> None:
        self._check_finite()
        metrics = evaluate(
            self.model, self.val_batches(), self.step_fn, self.device, self.precision
        )
        val = {f"val_{k}": v for k, v in metrics.items()}
        if self.val_metrics is not None:
            self.model.eval()
            with torch.no_grad(), autocast(self.precision, self.device):
                val.update({f"val_{k}": float(v) for k, v in self.val_metrics(self.model).items()})
        train_loss = float(self.loss_sum) / self.loss_count if self.loss_count else float("nan")
        self.loss_sum, self.loss_count = self._zero(), 0
        epoch = round(self.step / self.spe, 4) if self.spe else None
        row = {
            "step": self.step,
            "epoch": epoch,
            "wall_time": round(self.elapsed, 3),
            "train_loss": train_loss,
            **val,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        self.rows.append(row)
        self._write_metrics([row])
        if self._better(val):
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = {"step": self.step, "state": state, "metrics": val}
        where = f"epoch {epoch:.2f} " if epoch is not None else ""
        scores = " ".join(f"{k[4:]} {v:.4f}" for k, v in val.items())
        self.log.message(
            f"{self.label}step {self.step}/{self.total_steps} {where}train {train_loss:.4f} "
            f"val {scores} ({self.elapsed:.0f}s)"
        )
        atomic_save(self._state(), self.last_path)
        self.saved_step = self.step

    def start(self) -> None:
        """Validate the untrained model (or say where a resumed run goes on) and get the batches."""
        if self.resumed:
            self.log.message(f"{self.label}resuming from {self.last_path} at step {self.step}")
        else:
            self.metrics_path.unlink(missing_ok=True)
            self._validate()  # step 0: the untrained model, the start of every curve
        self.model.train()
        self._batches = self.train.batches(self.step)

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def advance(self) -> None:
        """One optimizer step, then a validation if one is due. The step's time (not the
        validation's) adds to `elapsed`; on a GPU it is clocked at validations, after a
        synchronisation, so that it includes the queued kernels."""
        tick = time.time()
        loss = self._train_step(next(self._batches))
        self.log.update(self.step, loss)
        if self.step in self.val_steps:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.elapsed += time.time() - tick
            self._validate()
            self.model.train()
        else:
            self.elapsed += time.time() - tick
        if self.on_step is not None:
            self.on_step(self.step)

    def fit(self) -> dict:
        """Train to the end (from the checkpoint if resumed); return the selected weights."""
        self.start()
        while not self.done:
            self.advance()
        return self.selected()

    def _train_step(self, batch) -> torch.Tensor:
        """One optimizer step; returns the loss (a tensor on the device: nothing here waits for
        the device, so a GPU runs ahead; validations read the loss sum and the finite check)."""
        batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
        with autocast(self.precision, self.device):
            loss = self.step_fn(self.model, batch)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if self.momentum is not None:  # a function of the step: a resumed run sets the same
            beta1 = self.momentum(self.step)
            for group in self.optimizer.param_groups:
                group["betas"] = (beta1, group["betas"][1])
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        value = loss.detach()
        first_bad = (self._bad_step < 0) & ~torch.isfinite(value)
        self._bad_step = torch.where(first_bad, self.step, self._bad_step)
        self._bad_loss = torch.where(first_bad, value.float(), self._bad_loss)
        self.loss_sum += value.to(self.loss_sum.dtype)
        self.loss_count += 1
        return value

    def last(self) -> dict:
        """The weights after the last step taken (a copy on the CPU) and that step."""
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        return {"state": state, "step": self.step}

    def selected(self) -> dict:
        """The weights chosen by cfg.select, with the step and validation scores they had."""
        if self.cfg.select == "last":
            return {**self.last(), "select": "last"}
        return {
            "state": self.best["state"],
            "step": self.best["step"],
            "select": "best",
            **self.best["metrics"],
        }


@contextlib.contextmanager
def turn(trainer: Trainer, stream=None):
    """Run code as `trainer`'s own: its RNG streams swapped in (and saved back after), its CUDA
    stream current."""
    set_rng_state(trainer.rng)
    try:
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            yield
    finally:
        trainer.rng = rng_state()


def fit_together(trainers: list[Trainer]) -> list[dict]:
    """Train several runs in one process, step by step in turn; return their selected weights.

    Each run keeps its own RNG streams (swapped in for its turn) and its own data order, so every
    run computes exactly what it computes alone: the same metrics, checkpoints and weights. What
    the runs share is the process (one interpreter, one import of torch, one CUDA context) and, on
    a GPU, the device: each run queues its kernels on its own CUDA stream, so the small kernels
    of several runs can execute side by side.
    """
    streams = []
    for t in trainers:
        stream = None
        if t.device.type == "cuda":
            stream = torch.cuda.Stream(t.device)
            stream.wait_stream(torch.cuda.current_stream(t.device))  # the weights were put there
        streams.append(stream)
    for t, stream in zip(trainers, streams):
        with turn(t, stream):
            t.start()
    while not all(t.done for t in trainers):
        for t, stream in zip(trainers, streams):
            if not t.done:
                with turn(t, stream):
                    t.advance()
    for device in {t.device for t in trainers if t.device.type == "cuda"}:
        torch.cuda.synchronize(device)
    return [t.selected() for t in trainers]
