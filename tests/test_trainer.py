"""The resumable training loop, through the runner (kvt.runner) and the synthetic family's runtime
(kvt.experiments.synthetic), and the Trainer driven directly for what the synthetic family does not
use (a length in iterations, validation every n steps, the noam schedule).

Guards the trainer's promises (trainer.py docstring, docs/protocol.md): a run killed at any point and
started again on the same folder ends exactly like an uninterrupted run (metrics, selected weights
bit for bit, test results), both after an exception in-process and after a real SIGKILL; metrics.csv
is appended on the validation schedule while training; last.pt is removed after a completed run
unless keep_last; a non-finite loss and a corrupt checkpoint stop the run with a message naming the
step / file (and a checkpoint of another version is refused); `select` picks the best-on-val or
the last weights; the warm-up + cosine, constant and noam schedules.
"""

import csv
import json
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import kvt.experiments.synthetic as syn
import kvt.runner as runner
import kvt.trainer as trainer_mod
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_hparams
from kvt.runfiles import load_weights
from kvt.trainer import (
    CHECKPOINT_VERSION,
    TensorBatches,
    TrainConfig,
    Trainer,
    evaluate,
    load_checkpoint,
    lr_lambda,
)
from torch import nn

CPU = torch.device("cpu")
STEPS_PER_EPOCH = 8  # 512 / 64
TOTAL_STEPS = 16
VAL_STEPS = [0, 2, 4, 6, 8, 10, 12, 14, 16]  # step 0, then 4 per epoch


class Stop(Exception):
    pass


def train(hp, folder, **kw):
    folder = Path(folder)
    return runner.train(hp, folder, folder / "model.pt", CPU, **kw)


def metrics(folder):
    with open(Path(folder) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def without_wall_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in rows]


def run_json(folder):
    return json.loads((Path(folder) / "run.json").read_text())


def assert_same_weights(path_a, path_b):
    a, b = torch.load(path_a, weights_only=False), torch.load(path_b, weights_only=False)
    assert (a["step"], a["select"], a["hparams"]) == (b["step"], b["select"], b["hparams"])
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        ta, tb = a["model"][name], b["model"][name]
        assert ta.dtype == tb.dtype and torch.equal(ta, tb), f"{name} differs"


def assert_same_run(folder, reference):
    """Same metrics except wall_time, bitwise-equal selected weights, equal test results."""
    assert without_wall_time(metrics(folder)) == without_wall_time(metrics(reference))
    assert_same_weights(Path(folder) / "model.pt", Path(reference) / "model.pt")
    assert runner.test(Path(folder) / "model.pt", Path(folder) / "test.json", CPU) == runner.test(
        Path(reference) / "model.pt", Path(reference) / "test.json", CPU
    )
    assert not (Path(folder) / "last.pt").exists()


pytestmark = pytest.mark.usefixtures("one_thread")  # runs are compared bit for bit


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, one_thread):
    """One uninterrupted run of the tiny configuration."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(tiny_hparams(), folder)
    return folder


# -- resume -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_at", [11, 8], ids=["mid-epoch", "epoch-end"])
def test_resume_after_exception_matches_uninterrupted(tmp_path, reference_run, stop_at):
    """Step 11 is no validation step (the last checkpoint is step 10; a metrics row written after
    that checkpoint by a kill between row and checkpoint is simulated and must be dropped); step 8
    is the epoch boundary, whose checkpoint already points at the next epoch."""

    def stop(step):
        if step == stop_at:
            raise Stop

    with pytest.raises(Stop):
        train(tiny_hparams(), tmp_path, on_step=stop)
    checkpoint_step = max(s for s in VAL_STEPS if s <= stop_at)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == checkpoint_step
    rows = metrics(tmp_path)
    assert [int(r["step"]) for r in rows] == [s for s in VAL_STEPS if s <= stop_at]
    first = run_json(tmp_path)
    assert first["status"] == "running" and first["resumed_at"] == []
    if stop_at == 11:  # a row of step 12 that never made it into a checkpoint
        with open(tmp_path / "metrics.csv", "a", newline="") as f:
            csv.DictWriter(f, fieldnames=list(rows[-1])).writerow({**rows[-1], "step": 12})

    seen = []
    record = train(tiny_hparams(), tmp_path, on_step=seen.append)
    assert seen[0] == checkpoint_step + 1, "the second call must resume, not start again"
    assert seen[-1] == TOTAL_STEPS and record["steps"] == TOTAL_STEPS
    assert_same_run(tmp_path, reference_run)
    final = run_json(tmp_path)
    assert final["status"] == "done"
    assert len(final["resumed_at"]) == 1 and final["resumed_at"][0]
    assert final["start_time"] == first["start_time"]


KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import kvt.runner as runner
    hp, folder, kill_at = json.loads(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    def on_step(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    runner.train(hp, folder, folder / "model.pt", torch.device("cpu"), on_step=on_step)
    print("not killed")
""")


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, reference_run):
    kill_at = 13  # mid-epoch 1, not a validation step: the last checkpoint is step 12
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(tiny_hparams()), str(tmp_path), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert (tmp_path / "last.pt").exists() and not (tmp_path / "model.pt").exists()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 12
    first = run_json(tmp_path)
    assert first["status"] == "running"
    # Snakemake deletes the outputs of a failed job before rerunning it: the checkpoint alone
    # must carry the metrics so far and the run record (first start time, resumes).
    (tmp_path / "metrics.csv").unlink()
    (tmp_path / "run.json").unlink()

    seen = []
    train(tiny_hparams(), tmp_path, on_step=seen.append)
    assert seen[0] == 13
    assert_same_run(tmp_path, reference_run)
    final = run_json(tmp_path)
    assert final["status"] == "done" and len(final["resumed_at"]) == 1
    assert final["start_time"] == first["start_time"]


# -- files ----------------------------------------------------------------------------------------


def test_metrics_schedule_and_last_removed(reference_run):
    rows = metrics(reference_run)
    assert [int(r["step"]) for r in rows] == VAL_STEPS
    assert [float(r["epoch"]) for r in rows] == [s / STEPS_PER_EPOCH for s in VAL_STEPS]
    assert rows[0]["train_loss"] == "nan"  # step 0: the untrained model, no training loss yet
    assert all(float(r["train_loss"]) > 0 for r in rows[1:])
    # the learning rate the optimizer had at each row follows the schedule, stepped per iteration
    warmup = tiny_hparams()["warmup_steps"]
    for r in rows:  # the reference's warm-up x cosine, not the schedule code checked against itself
        step = int(r["step"])
        expect = tutorial_cosine_factor(step, warmup, TOTAL_STEPS)
        assert float(r["lr"]) == pytest.approx(1e-3 * expect, abs=1e-12)
    assert float(rows[-1]["lr"]) == 0.0
    assert not (reference_run / "last.pt").exists()
    record = run_json(reference_run)
    assert record["status"] == "done" and record["steps"] == TOTAL_STEPS
    assert record["hparams"] == tiny_hparams() and record["resumed_at"] == []


def test_test_json_holds_the_metrics_of_the_selected_weights(reference_run, tmp_path):
    record = run_json(reference_run)
    out = tmp_path / "test.json"
    result = runner.test(reference_run / "model.pt", out, CPU)
    assert json.loads(out.read_text()) == result
    assert set(result) == {
        "test_loss",
        "test_acc",
        "last_test_loss",
        "last_test_acc",
        "test_size",
        "step",
        "select",
        "last_step",
        "n_params",
    }
    assert result["test_size"] == tiny_hparams()["test_size"] == 256
    assert (result["step"], result["select"]) == (record["selected"]["step"], "best")
    assert result["n_params"] == record["n_params"] > 0
    assert 0.0 <= result["test_acc"] <= 1.0 and result["test_loss"] > 0
    # the metrics are those of the selected weights on the test split, per token
    model, _ = runner.load_model(reference_run / "model.pt", CPU)
    hp = tiny_hparams()
    batches = list(syn.eval_data(hp, "test", {})())
    assert len(batches) == 1
    x, y = batches[0]
    assert len(x) == 256  # one evaluation batch holds the whole tiny test split
    with torch.no_grad():
        logits = model(x)
    assert result["test_acc"] == pytest.approx(
        (logits.argmax(-1) == y).float().mean().item(), abs=1e-6
    )
    assert result["test_loss"] == pytest.approx(
        F.cross_entropy(logits.flatten(0, 1), y.flatten()).item(), rel=1e-5
    )


def test_metrics_appended_while_training_and_keep_last(tmp_path):
    rows_seen = {}

    def look(step):
        rows_seen[step] = [int(r["step"]) for r in metrics(tmp_path)]
        assert (tmp_path / "last.pt").exists()

    train(tiny_hparams(), tmp_path, on_step=look, keep_last=True)
    for step, rows in rows_seen.items():
        assert rows == [s for s in VAL_STEPS if s <= step], f"metrics.csv at step {step}"
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == TOTAL_STEPS


# -- failures -------------------------------------------------------------------------------------


def test_training_steps_never_wait_for_the_device(tmp_path, monkeypatch):
    """No code of ours in a training step reads a tensor's value (item, float, bool, tolist): on a
    GPU the steps run ahead of the host, which reads the loss sum and the finite check at
    validations only. (torch.optim reads its step counters, host tensors even on a GPU.)"""
    import sys

    import kvt
    import torch
    from kvt.trainer import Trainer

    ours = str(Path(kvt.__file__).parent)
    reads, inside = {"step": 0, "validation": 0}, {"step": False}

    def spy(name):
        real = getattr(torch.Tensor, name)

        def read(self, *args):
            if sys._getframe(1).f_code.co_filename.startswith(ours):
                reads["step" if inside["step"] else "validation"] += 1
            return real(self, *args)

        return read

    real_step = Trainer._train_step

    def step(self, batch):
        inside["step"] = True
        try:
            return real_step(self, batch)
        finally:
            inside["step"] = False

    for name in ("item", "__float__", "__bool__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, spy(name))
    monkeypatch.setattr(Trainer, "_train_step", step)
    train(tiny_hparams(), tmp_path)
    assert reads["step"] == 0 and reads["validation"] > 0


def test_non_finite_loss_names_step_and_checkpoint(tmp_path, monkeypatch):
    calls = {"train": 0}
    real = syn.step

    def nan_at_step_7(model, batch):
        out = real(model, batch)
        if model.training:
            calls["train"] += 1
            if calls["train"] == 7:
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(syn.Synthetic, "step", staticmethod(nan_at_step_7))
    with pytest.raises(FloatingPointError) as err:
        train(tiny_hparams(), tmp_path)
    message = str(err.value)
    assert "step 7" in message and str(tmp_path / "last.pt") in message
    assert "step 6" in message  # the last good checkpoint
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 6
    assert [int(r["step"]) for r in metrics(tmp_path)] == [0, 2, 4, 6]
    assert not (tmp_path / "model.pt").exists()


def test_corrupt_checkpoint_is_an_error(tmp_path):
    last = tmp_path / "last.pt"
    last.write_bytes(b"\x00garbage, not a checkpoint\xff" * 10)
    with pytest.raises(RuntimeError, match=str(last)):
        train(tiny_hparams(), tmp_path)
    assert last.read_bytes().startswith(b"\x00garbage")  # not overwritten: no silent restart
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "model.pt").exists()


def test_checkpoint_of_another_version_is_refused(tmp_path):
    last = tmp_path / "last.pt"
    torch.save({"version": CHECKPOINT_VERSION - 1, "step": 3}, last)
    with pytest.raises(
        RuntimeError, match=f"not a checkpoint of this version \\({CHECKPOINT_VERSION}\\)"
    ):
        load_checkpoint(last)
    with pytest.raises(RuntimeError, match=str(last)):
        train(tiny_hparams(), tmp_path)
    assert torch.load(last, weights_only=False) == {"version": CHECKPOINT_VERSION - 1, "step": 3}
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "model.pt").exists()


# -- weight selection -------------------------------------------------------------------------------

VAL_ACC = [0.10, 0.20, 0.30, 0.60, 0.50, 0.20, 0.40, 0.30, 0.55]  # per validation: best at step 6


def scripted_val(monkeypatch, weights_at):
    """Validation accuracy follows VAL_ACC (the losses stay real); weights_at[k]: the weights the
    model had at validation k."""
    count = {"val": 0}
    real = syn.step

    def step(model, batch):
        out = real(model, batch)
        if not model.training and len(batch[0]) > 1:  # one example: the runner's FLOP count
            k = count["val"]
            count["val"] += 1
            weights_at[k] = {name: t.clone() for name, t in model.state_dict().items()}
            out["acc"] = round(VAL_ACC[k] * out["count"])
        return out

    monkeypatch.setattr(syn.Synthetic, "step", staticmethod(step))


def test_select_best(tmp_path, monkeypatch):
    weights_at = {}
    scripted_val(monkeypatch, weights_at)
    record = train(tiny_hparams(select="best"), tmp_path)
    best = VAL_ACC.index(max(VAL_ACC))
    assert record["selected"]["step"] == VAL_STEPS[best] == 6
    assert run_json(tmp_path)["selected"]["step"] == 6
    assert record["selected"]["val_acc"] == pytest.approx(VAL_ACC[best], abs=1 / 1024)
    saved = torch.load(tmp_path / "model.pt", weights_only=False)
    assert saved["step"] == 6 and saved["select"] == "best"
    for name, t in weights_at[best].items():
        assert torch.equal(saved["model"][name], t), name
    assert not all(
        torch.equal(saved["model"][n], t) for n, t in weights_at[len(VAL_ACC) - 1].items()
    )


def test_last_weights_kept_beside_the_selected_and_both_tested(tmp_path, monkeypatch):
    """The reference tested its last weights: model.pt also holds them (where they are not the
    selected ones), and test.json scores both, test_<m> the selected and last_test_<m> the last."""
    weights_at = {}
    scripted_val(monkeypatch, weights_at)
    train(tiny_hparams(select="best"), tmp_path)
    monkeypatch.undo()  # the test below validates with the real step
    saved = load_weights(tmp_path / "model.pt")
    assert (saved["step"], saved["last_step"]) == (6, TOTAL_STEPS)
    final = weights_at[len(VAL_ACC) - 1]  # the weights at the last validation, step 16
    assert saved["last"].keys() == final.keys()
    assert all(torch.equal(saved["last"][n], t) for n, t in final.items())
    result = runner.test(tmp_path / "model.pt", tmp_path / "test.json", CPU)
    assert json.loads((tmp_path / "test.json").read_text()) == result
    hp = tiny_hparams(select="best")
    model = syn.build_model(hp).eval()
    for prefix, state in (("test_", saved["model"]), ("last_test_", final)):
        model.load_state_dict(state)
        expect = evaluate(model, syn.eval_data(hp, "test", {})(), syn.step, CPU)
        assert result[f"{prefix}acc"] == pytest.approx(expect["acc"], abs=1e-12), prefix
        assert result[f"{prefix}loss"] == pytest.approx(expect["loss"], abs=1e-12), prefix
    assert result["last_test_loss"] != result["test_loss"]  # two weights really were tested
    assert (result["step"], result["last_step"], result["select"]) == (6, TOTAL_STEPS, "best")


def test_select_last(tmp_path, monkeypatch):
    weights_at = {}
    scripted_val(monkeypatch, weights_at)
    record = train(tiny_hparams(select="last"), tmp_path, keep_last=True)
    assert record["selected"]["step"] == TOTAL_STEPS == record["steps"]
    saved = torch.load(tmp_path / "model.pt", weights_only=False)
    assert saved["step"] == TOTAL_STEPS and saved["select"] == "last"
    final = load_checkpoint(tmp_path / "last.pt")["model"]
    for name, t in final.items():
        assert torch.equal(saved["model"][name], t), name
        assert torch.equal(weights_at[len(VAL_ACC) - 1][name], t), name
    # the selected weights are the last: not stored twice, not tested twice
    assert "last" not in saved and saved["last_step"] == TOTAL_STEPS
    monkeypatch.undo()
    calls = []
    real = syn.eval_data
    monkeypatch.setattr(
        syn.Synthetic, "eval_data", staticmethod(lambda *a: calls.append(a[1]) or real(*a))
    )
    measured = []
    measure = runner.measure
    monkeypatch.setattr(runner, "measure", lambda *a: measured.append(a) or measure(*a))
    result = runner.test(tmp_path / "model.pt", tmp_path / "test.json", CPU)
    assert len(measured) == 1
    assert calls == ["test", "test"]  # measured once, then the attention probe's first batches
    assert result["last_test_acc"] == result["test_acc"] and result["last_step"] == TOTAL_STEPS


# -- schedule -------------------------------------------------------------------------------------


def tutorial_cosine_factor(epoch, warmup, max_iters):
    """UvA tutorial 6's CosineWarmupScheduler.get_lr_factor, as the reference's
    Reverse_sort_pos.py has it (its `epoch` is the scheduler's step count)."""
    lr_factor = 0.5 * (1 + np.cos(np.pi * epoch / max_iters))
    if epoch <= warmup:
        lr_factor *= epoch * 1.0 / warmup
    return lr_factor


@pytest.mark.parametrize("warmup,total", [(5, 40), (3, 16), (100, 703)])
def test_warmup_cosine_schedule_is_the_references(warmup, total):
    f = lr_lambda(TrainConfig(epochs=1, batch_size=1, lr=1.0, warmup_steps=warmup), total)
    for s in range(total + 1):
        assert f(s) == pytest.approx(tutorial_cosine_factor(s, warmup, total), abs=1e-12)
    assert f(0) == 0.0, "the reference's first step has rate 0"
    # the warm-up multiplies the cosine: no plateau at 1, and the cosine spans every step
    assert max(f(s) for s in range(total + 1)) < 1.0
    assert f(total) == pytest.approx(0.0, abs=1e-12) and f(total - 1) > 0
    decay = [f(s) for s in range(warmup, total + 1)]
    assert all(b < a for a, b in zip(decay, decay[1:])), "strictly decreasing after the warm-up"
    no_warmup = lr_lambda(TrainConfig(epochs=1, batch_size=1, lr=1.0, warmup_steps=0), total)
    assert no_warmup(0) == 1.0
    assert no_warmup(total // 2) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * (total // 2) / total))
    )
    constant = lr_lambda(
        TrainConfig(epochs=1, batch_size=1, lr=1.0, warmup_steps=warmup, schedule="constant"), total
    )
    ramp = [constant(s) for s in range(warmup)]
    assert ramp == pytest.approx([(s + 1) / warmup for s in range(warmup)]), "linear rise"
    assert [constant(s) for s in range(warmup, total + 1)] == [1.0] * (total - warmup + 1)


@pytest.mark.parametrize("warmup", [4, 10, 0])
def test_noam_schedule(warmup):
    """Linear rise to 1 at the end of the warm-up, then sqrt(warmup / (step + 1)): independent of
    the run's length, never 0."""
    f = lr_lambda(TrainConfig(epochs=1, lr=1.0, warmup_steps=warmup, schedule="noam"), 40)
    g = lr_lambda(TrainConfig(epochs=1, lr=1.0, warmup_steps=warmup, schedule="noam"), 4000)
    w = max(1, warmup)
    for s in range(warmup):
        assert f(s) == pytest.approx((s + 1) / warmup), "linear rise from 0"
    assert f(w - 1) == pytest.approx(1.0)  # the peak: the last warm-up step
    for s in range(w - 1, 200):
        assert f(s) == pytest.approx(math.sqrt(w / (s + 1)))
    assert f(4 * w - 1) == pytest.approx(0.5)  # inverse square root, not linear or cosine
    decay = [f(s) for s in range(w - 1, 200)]
    assert all(b < a for a, b in zip(decay, decay[1:])) and decay[-1] > 0
    assert [f(s) for s in range(200)] == [g(s) for s in range(200)]  # no dependence on the length


def test_train_config_needs_one_length_and_known_choices():
    for kw in ({}, {"epochs": 1, "iterations": 10}):
        with pytest.raises(ValueError, match="epochs or as iterations"):
            TrainConfig(**kw)
    with pytest.raises(ValueError, match="'sgd'"):
        TrainConfig(epochs=1, optimizer="sgd")
    with pytest.raises(ValueError, match="'linear'"):
        TrainConfig(epochs=1, schedule="linear")
    cfg = TrainConfig.from_hparams(
        {"lr": 0.5, "epochs": 3, "task": "sort", "betas": [0.9, 0.98]}, optimizer="adamw"
    )
    assert (cfg.lr, cfg.epochs, cfg.optimizer, cfg.betas) == (0.5, 3, "adamw", (0.9, 0.98))


# -- the Trainer on its own: a length in iterations, validation every n steps -----------------------


def linear_step(model, batch):
    x, y = batch
    logits = model(x)
    return {
        "loss": F.cross_entropy(logits, y),
        "count": len(y),
        "acc": (logits.argmax(-1) == y).sum(),
    }


class Endless:
    """Training data with no epochs: batches(start_step) only (a stream)."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size

    def batches(self, start_step=0):
        step = start_step
        while True:
            i = (step * self.batch_size) % len(self.x)
            yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]
            step += 1


def toy_data(n=40):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen)
    return x, (x[:, 0] > 0).long()


def toy_trainer(folder, train, cfg, **kw):
    torch.manual_seed(0)
    x, y = toy_data()
    return Trainer(
        nn.Linear(3, 2),
        train,
        lambda: [(x[:20], y[:20]), (x[20:], y[20:])],
        linear_step,
        cfg,
        folder,
        CPU,
        **kw,
    )


@pytest.mark.parametrize("data", ["tensor_batches", "stream"])
def test_iterations_and_val_every(tmp_path, data):
    x, y = toy_data()
    train = TensorBatches((x, y), 8, seed=0) if data == "tensor_batches" else Endless(x, y, 8)
    cfg = TrainConfig(iterations=11, val_every=4, lr=0.05, schedule="constant", select="last")
    seen = []
    trainer = toy_trainer(tmp_path, train, cfg, on_step=seen.append)
    assert (trainer.total_steps, sorted(trainer.val_steps)) == (11, [4, 8, 11])
    chosen = trainer.fit()
    assert seen == list(range(1, 12))
    rows = metrics(tmp_path)
    assert [int(r["step"]) for r in rows] == [0, 4, 8, 11]  # step 0, every 4, and the last
    if data == "tensor_batches":  # 5 batches per epoch: the epoch column still counts epochs
        assert [float(r["epoch"]) for r in rows] == [0.0, 0.8, 1.6, 2.2]
    else:  # no epochs in a stream
        assert all(r["epoch"] == "" for r in rows)
    assert set(rows[0]) == {"step", "epoch", "wall_time", "train_loss", "val_loss", "val_acc", "lr"}
    assert all(float(r["lr"]) == 0.05 for r in rows)
    # accuracy and loss are means per item over both validation batches
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(x)
    assert float(rows[-1]["val_acc"]) == pytest.approx(
        (logits.argmax(-1) == y).float().mean().item()
    )
    assert float(rows[-1]["val_loss"]) == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert chosen["step"] == 11 and chosen["select"] == "last"
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 11


def test_val_every_defaults_to_the_end_and_epochs_need_steps_per_epoch(tmp_path):
    x, y = toy_data()
    trainer = toy_trainer(tmp_path / "a", Endless(x, y, 8), TrainConfig(iterations=6))
    assert (trainer.total_steps, trainer.val_steps) == (6, {6})
    with pytest.raises(ValueError, match="steps_per_epoch"):
        toy_trainer(tmp_path / "b", Endless(x, y, 8), TrainConfig(epochs=2))


def test_select_on_a_metric_to_minimise(tmp_path):
    """select_on=("val_loss", "min"): the weights of the lowest validation loss, not the last."""
    x, y = toy_data()
    losses = [2.0, 1.5, 0.7, 0.9, 1.2]  # per validation (2 batches each): best at step 4
    weights_at, calls = [], {"val": 0}

    def scripted(model, batch):
        out = linear_step(model, batch)
        if not model.training:
            k, first = divmod(calls["val"], 2)
            calls["val"] += 1
            if first == 0:
                weights_at.append({name: t.clone() for name, t in model.state_dict().items()})
            out["loss"] = torch.tensor(losses[k], dtype=torch.float64)
        return out

    torch.manual_seed(0)
    trainer = Trainer(
        nn.Linear(3, 2),
        TensorBatches((x, y), 8, seed=0),
        lambda: [(x[:20], y[:20]), (x[20:], y[20:])],
        scripted,
        TrainConfig(iterations=8, val_every=2, lr=0.1, schedule="constant"),
        tmp_path,
        CPU,
        select_on=("val_loss", "min"),
    )
    chosen = trainer.fit()
    assert [float(r["val_loss"]) for r in metrics(tmp_path)] == losses
    assert chosen["step"] == 4 and chosen["val_loss"] == 0.7 and chosen["select"] == "best"
    for name, t in weights_at[2].items():
        assert torch.equal(chosen["state"][name], t), name
    assert not all(torch.equal(chosen["state"][n], t) for n, t in weights_at[-1].items())
    with pytest.raises(ValueError, match="max or min"):
        Trainer(
            nn.Linear(3, 2),
            TensorBatches((x, y), 8, seed=0),
            lambda: [],
            linear_step,
            TrainConfig(iterations=1),
            tmp_path / "c",
            CPU,
            select_on=("val_loss", "down"),
        )


def test_checkpoints_load_as_data_only(tmp_path, reference_run):
    """weights_only=True: a checkpoint holding an arbitrary pickled object (here a numpy array, as
    format 2 stored the numpy RNG) is refused with a message; this version's files load."""
    import numpy as np

    last = tmp_path / "last.pt"
    torch.save({"version": CHECKPOINT_VERSION, "rng": np.arange(3)}, last)
    with pytest.raises(RuntimeError, match="cannot read checkpoint .*Delete it"):
        load_checkpoint(last)
    assert load_weights(reference_run / "model.pt")["select"] in ("best", "last")


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint", b"PK\x03\x04 truncated zip"],
    ids=["garbage", "truncated"],
)
def test_an_unreadable_checkpoint_never_suggests_loading_it_as_code(tmp_path, content):
    """PyTorch's own message for a file weights_only cannot read advises weights_only=False, which
    would run the file's code: the refusal says what to do instead."""
    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    with pytest.raises(RuntimeError) as err:
        load_checkpoint(bad)
    message = str(err.value)
    assert str(bad) in message and "run its train job again" in message
    assert "weights_only" not in message and "False" not in message


def test_weights_of_another_run_are_refused_naming_both(tmp_path, reference_run):
    """A model.pt copied into another run's folder (kv's weights where qkv's should be) would give
    that folder the other run's numbers: the eval job checks the file against its run's hparams."""
    hp = dict(load_weights(reference_run / "model.pt")["hparams"])
    out = tmp_path / "own" / "test.json"
    assert runner.test(reference_run / "model.pt", out, CPU, expect=tiny_hparams())["step"] > 0
    other = {**tiny_hparams(), "attention": "qkv"}
    assert hp["attention"] != "qkv"
    with pytest.raises(RuntimeError) as err:
        runner.test(reference_run / "model.pt", tmp_path / "other" / "test.json", CPU, expect=other)
    message = str(err.value)
    assert f"/{hp['attention']}/" in message and "/qkv/" in message and "attention=" in message
    assert not (tmp_path / "other" / "test.json").exists()
    with pytest.raises(RuntimeError, match="seed=0 .expected 1."):
        runner.test(reference_run / "model.pt", tmp_path / "o2.json", CPU, expect={**hp, "seed": 1})


# -- fastai's one-cycle schedule --------------------------------------------------------------------


def fastai_one_cycle(total_steps, lr_max, div=25.0, div_final=1e5, pct_start=0.25,
                     moms=(0.95, 0.85, 0.95)):  # fmt: skip
    """fastai's fit_one_cycle written out (fastai.callback.schedule): SchedCos, combine_scheds
    (float32 tensors, as fastai's), combined_cos, and ParamScheduler's before_batch, which sets
    the hyperparameters at pct_train = train_iter / total before each batch. Returns the
    (lr, mom) of every batch."""

    def sched_cos(start, end, pos):
        return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2

    def combine_scheds(pcts, scheds):
        pcts = torch.cumsum(torch.tensor([0] + list(pcts)), 0)
        pct_lim = len(pcts) - 2

        def _inner(pos):
            idx = min((pos >= pcts).nonzero().max(), pct_lim)
            actual_pos = (pos - pcts[idx]) / (pcts[idx + 1] - pcts[idx])
            return scheds[idx](actual_pos.item())

        return _inner

    def combined_cos(pct, start, middle, end):
        return combine_scheds(
            [pct, 1 - pct],
            [lambda p: sched_cos(start, middle, p), lambda p: sched_cos(middle, end, p)],
        )

    lr = combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final)
    mom = combined_cos(pct_start, *moms)
    return [(lr(i / total_steps), mom(i / total_steps)) for i in range(total_steps)]


def one_cycle_config(**kw):
    return TrainConfig(epochs=1, lr=1e-3, schedule="one_cycle", moms=(0.95, 0.85, 0.95), **kw)


@pytest.mark.parametrize("total", [15 * 49, 90, 7])
def test_one_cycle_is_fastais_fit_one_cycle(total):
    """The rate and Adam's beta1 of every step against fastai's formula: equal up to fastai's
    float32 phase position (ours float64), 1e-6 of the peak rate and of beta1."""
    cfg = one_cycle_config()
    f, mom = lr_lambda(cfg, total), trainer_mod.momentum(cfg, total)
    for step, (lr, beta1) in enumerate(fastai_one_cycle(total, cfg.lr)):
        assert cfg.lr * f(step) == pytest.approx(lr, rel=0, abs=1e-6 * cfg.lr), step
        assert mom(step) == pytest.approx(beta1, rel=0, abs=1e-6), step
    assert f(0) == pytest.approx(1 / 25) and mom(0) == pytest.approx(0.95)
    peak = max(range(total), key=f)
    assert abs(peak - 0.25 * total) <= 1 and (total < 10 or f(peak) > 0.99)
    assert f(total) == pytest.approx(1e-5) and mom(total) == pytest.approx(0.95)
    if total > 30:
        assert min(mom(s) for s in range(total)) == pytest.approx(0.85, abs=1e-4)


def test_one_cycle_reaches_the_optimizer_each_step_and_resumes(tmp_path):
    """Trained with the schedule, the optimizer's rate and beta1 at every step are fastai's; a run
    resumed mid-way sets the same values (they are functions of the step)."""
    x, y = toy_data()
    cfg = one_cycle_config(batch_size=8)  # 5 steps an epoch
    cfg.epochs = 4
    expected = fastai_one_cycle(20, cfg.lr)
    seen = []

    def record(step):
        group = trainer.optimizer.param_groups[0]
        seen.append((step, group["betas"][0], group["lr"]))

    trainer = toy_trainer(tmp_path, TensorBatches((x, y), 8, seed=0), cfg, on_step=record)
    trainer.fit()
    for step, beta1, lr in seen:
        assert beta1 == pytest.approx(expected[step - 1][1], abs=1e-6)  # of the step just taken
        if step < 20:
            assert lr == pytest.approx(expected[step][0], abs=1e-6 * cfg.lr)  # the next step's
    assert [s for s, _, _ in seen] == list(range(1, 21))


def test_one_cycle_needs_three_momenta_and_a_start_share():
    with pytest.raises(ValueError, match="start, middle, end"):
        one_cycle_config().__class__(epochs=1, moms=(0.9, 0.8))
    with pytest.raises(ValueError, match="pct_start"):
        TrainConfig(epochs=1, pct_start=1.0)


def test_no_weight_decay_on_norms_and_biases_when_asked():
    """decay_norm_bias False (fastai's wd_bn_bias=False): LayerNorm weights and every bias in a
    group without decay; True (the default) keeps one group, as before."""
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2, bias=False))
    one = trainer_mod.param_groups(model, TrainConfig(epochs=1))
    assert len(one) == 1 and len(one[0]["params"]) == 5
    decay, free = trainer_mod.param_groups(model, TrainConfig(epochs=1, decay_norm_bias=False))
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 3), (2, 4)]
    assert [tuple(p.shape) for p in free["params"]] == [(4,), (4,), (4,)]
    assert free["weight_decay"] == 0.0 and "weight_decay" not in decay
