"""Set-anomaly training sets drawn afresh per item (UvA tutorial 6's training SetAnomalyDataset).

Guards: each training item is a set of set_size - 1 distinct images of one class and its odd one,
an image of another class, at a uniformly random position; an epoch has one item per training
image (each the odd one once, steps per epoch as with fixed sets); the sets differ between epochs
and between steps, and are the same for the same (seed, step) however the step is reached; the
draw reads no device tensor (no host synchronisation); a run killed by SIGKILL and resumed ends
bit for bit like an uninterrupted one; `resample_train: false` gives the old fixed sets, and the
switch leaves the validation and test sets alone.
"""

import json
import signal
import subprocess
import sys
import textwrap

import kvt.experiments.anomaly as anomaly
import kvt.runner as runner
import pytest
import torch
from conftest import anomaly_inputs, tiny_hparams
from kvt.data.set_anomaly import FreshSetBatches, SetBatches, SetSampler, make_sets

CPU = torch.device("cpu")
N_CLASSES, PER_CLASS, SET_SIZE, BATCH = 6, 12, 5, 8  # 72 images -> 9 steps per epoch


def labels_and_features():
    """Labels in shuffled order and features whose first column is the image's index."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
    labels = labels[torch.randperm(len(labels), generator=g)]
    features = torch.arange(len(labels), dtype=torch.float32)[:, None].repeat(1, 3)
    return labels, features


def fresh(seed=0):
    labels, features = labels_and_features()
    return FreshSetBatches(features, SetSampler(labels, SET_SIZE), BATCH, seed)


def members_of(x: torch.Tensor) -> torch.Tensor:
    """Image indices of a batch of the features above."""
    return x[..., 0].long()


def take(stream, n):
    return [next(stream) for _ in range(n)]


def test_each_item_is_a_set_with_one_odd_one_at_a_random_place():
    labels, _ = labels_and_features()
    data = fresh()
    assert data.steps_per_epoch == len(labels) // BATCH  # the tutorial's length: one item per image
    epochs = 40
    batches = take(data.batches(0), epochs * data.steps_per_epoch)
    for x, y in batches:
        assert x.shape == (BATCH, SET_SIZE, 3) and y.shape == (BATCH,) and y.dtype == torch.int64
        m = members_of(x)
        lab = labels[m]
        odd = lab.gather(1, y[:, None])
        normal = torch.ones_like(lab, dtype=torch.bool).scatter(1, y[:, None], False)
        normal_labels = lab[normal].view(BATCH, SET_SIZE - 1)
        assert (normal_labels == normal_labels[:, :1]).all() and (odd != normal_labels[:, :1]).all()
        assert all(len(set(row.tolist())) == SET_SIZE for row in m)  # distinct images
    # within an epoch every item's odd one is another image (a permutation, the last partial
    # batch dropped)
    for e in range(2):
        odd = [
            members_of(x).gather(1, y[:, None]).squeeze(1)
            for x, y in batches[e * data.steps_per_epoch : (e + 1) * data.steps_per_epoch]
        ]
        assert len(set(torch.cat(odd).tolist())) == data.steps_per_epoch * BATCH
    targets = torch.cat([y for _, y in batches])
    expected = len(targets) / SET_SIZE
    chi2 = ((torch.bincount(targets, minlength=SET_SIZE).double() - expected) ** 2 / expected).sum()
    assert chi2 < 25  # df 4: P(chi2 > 25) ~ 5e-5; "always last" would give 4 * len(targets)


def sets_by_odd_one(batches) -> dict:
    """{odd image: the set's images, sorted} of a list of batches."""
    out = {}
    for x, y in batches:
        m = members_of(x)
        for row, t in zip(m, y):
            out[row[t].item()] = tuple(sorted(row.tolist()))
    return out


def test_sets_are_drawn_afresh_every_epoch_and_step():
    data = fresh()
    spe = data.steps_per_epoch
    batches = take(data.batches(0), 2 * spe)
    first, second = sets_by_odd_one(batches[:spe]), sets_by_odd_one(batches[spe:])
    common = first.keys() & second.keys()
    assert len(common) > spe * BATCH // 2
    changed = sum(first[i] != second[i] for i in common)
    assert changed > 0.9 * len(common)  # same odd one, another set (a repeat is a rare chance)
    # two steps with the same odd ones still draw different sets: step is part of the seed
    order = torch.randperm(data.n_items, generator=torch.Generator().manual_seed(0))[:BATCH]
    a, b = data._batch(order, 0), data._batch(order, 1)
    assert torch.equal(
        members_of(a[0]).gather(1, a[1][:, None]), members_of(b[0]).gather(1, b[1][:, None])
    )
    assert not torch.equal(a[0], b[0])
    # the fixed sets repeat: each odd one has the same set every epoch
    labels, features = labels_and_features()
    fixed = SetBatches(features, *make_sets(labels, len(labels), SET_SIZE, seed=0), BATCH, seed=0)
    batches = take(fixed.batches(0), 2 * spe)
    first, second = sets_by_odd_one(batches[:spe]), sets_by_odd_one(batches[spe:])
    assert all(first[i] == second[i] for i in first.keys() & second.keys())


def test_a_steps_sets_depend_on_seed_and_step_alone():
    data = fresh(seed=3)
    spe = data.steps_per_epoch
    full = take(data.batches(0), 3 * spe)
    for start in (0, 5, spe, spe + 4, 2 * spe - 1):  # mid-epoch, an epoch boundary, ...
        again = take(
            fresh(seed=3).batches(start), 3 * spe - start
        )  # a new object, as after a restart
        for (xa, ya), (xb, yb) in zip(full[start:], again):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert [torch.equal(a[0], b[0]) for a, b in zip(full[spe : 2 * spe], data.epoch(1))] == [
        True
    ] * spe
    other = next(fresh(seed=4).batches(0))
    assert not torch.equal(full[0][0], other[0])


def test_the_draw_reads_no_device_tensor():
    """Features on the meta device hold no data: a draw that read a value there (on a GPU: a
    synchronisation) would fail. The draws are made on the CPU and only indexed on the device."""
    data = fresh().to("meta")
    x, y = next(data.batches(5))
    assert x.device.type == y.device.type == "meta"
    assert x.shape == (BATCH, SET_SIZE, 3) and y.shape == (BATCH,)


def test_fresh_batches_errors():
    labels, features = labels_and_features()
    with pytest.raises(ValueError, match="71 feature vectors for 72 labels"):
        FreshSetBatches(features[:-1], SetSampler(labels, SET_SIZE), BATCH, 0)
    with pytest.raises(ValueError, match="72 training sets make no batch of 100"):
        FreshSetBatches(features, SetSampler(labels, SET_SIZE), 100, 0)


def test_train_split_with_too_few_images_a_class_names_the_split(tmp_path):
    inputs = anomaly_inputs(tmp_path)  # 120 images a class, 12 held out
    hp = tiny_hparams("anomaly", set_size=120)
    with pytest.raises(
        ValueError,
        match=r"features.pt, train split: class\(es\) .* fewer than "
        r"set_size-1=119 .*\(anomaly.train_images",
    ):
        anomaly.train_data(hp, inputs)


def test_the_switch_off_gives_the_fixed_sets_and_leaves_val_and_test_alone(tmp_path):
    inputs = anomaly_inputs(tmp_path)
    hp = tiny_hparams("anomaly")
    assert hp["resample_train"] is True  # the tutorial's protocol is the default
    on, off = (
        anomaly.train_data(hp, inputs),
        anomaly.train_data({**hp, "resample_train": False}, inputs),
    )
    assert isinstance(on, FreshSetBatches) and isinstance(off, SetBatches)
    assert on.steps_per_epoch == off.steps_per_epoch == 1080 // 64
    # off: one set per training image from split_seed, every epoch the same sets in a new order
    x, y = anomaly._splits(inputs["features"], hp["val_fraction"], hp["split_seed"])["train"]
    members, target = make_sets(y, len(y), hp["set_size"], hp["split_seed"] * 10)
    order = torch.randperm(
        len(y), generator=torch.Generator().manual_seed(hp["seed"] * 100_003 + 1)
    )
    xb, yb = next(off.batches(off.steps_per_epoch))  # epoch 1's first batch
    idx = order[: hp["batch_size"]]
    assert torch.equal(xb, x[members[idx]]) and torch.equal(yb, target[idx])
    # on: the same images, drawn afresh
    assert not torch.equal(next(on.batches(0))[0], next(off.batches(0))[0])
    for split in ("val", "test"):
        a = list(anomaly.eval_data(hp, split, inputs)())
        b = list(anomaly.eval_data({**hp, "resample_train": False}, split, inputs)())
        assert len(a) == len(b) and all(
            torch.equal(p, q) for u, v in zip(a, b) for p, q in zip(u, v)
        )


KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import kvt.runner as runner
    hp, folder, inputs, kill_at = (json.loads(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]),
                                   int(sys.argv[4]))
    def on_step(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    runner.train(hp, folder, folder / "model.pt", torch.device("cpu"), on_step=on_step, inputs=inputs)
    print("not killed")
""")


@pytest.mark.slow
def test_killed_and_resumed_run_is_bit_identical(tmp_path, one_thread):
    """The tiny run: 16 steps an epoch, 2 epochs, validated (and checkpointed) once an epoch."""
    hp, inputs = tiny_hparams("anomaly"), anomaly_inputs(tmp_path)
    assert hp["resample_train"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    runner.train(hp, whole, whole / "model.pt", CPU, inputs=inputs)
    kill_at = 21  # mid-epoch 1: the last checkpoint is step 16
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_RUN,
            json.dumps(hp),
            str(killed),
            json.dumps(inputs),
            str(kill_at),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert not (killed / "model.pt").exists()
    seen = []
    runner.train(hp, killed, killed / "model.pt", CPU, inputs=inputs, on_step=seen.append)
    assert seen[0] == 17, "the second call must resume at the checkpoint, not start again"

    def rows(folder):
        lines = (folder / "metrics.csv").read_text().splitlines()
        return [line.split(",")[:2] + line.split(",")[3:] for line in lines]  # without wall_time

    assert rows(killed) == rows(whole) and len(rows(whole)) == 4  # header, steps 0, 16, 32
    a, b = (torch.load(f / "model.pt", weights_only=False) for f in (whole, killed))
    assert a["step"] == b["step"] and a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert runner.test(whole / "model.pt", whole / "test.json", CPU, inputs=inputs) == runner.test(
        killed / "model.pt", killed / "test.json", CPU, inputs=inputs
    )
