"""Several seeds trained in one process (runner.train_together, the `joint_seeds` job): every run
must compute exactly what it computes alone, also when the job is killed and started again."""

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_hparams
from kvt import runner

CPU = torch.device("cpu")
SEEDS = (0, 1, 2)


class Stop(Exception):
    pass


def rows(folder):
    with open(Path(folder) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_time"} for r in csv.DictReader(f)]


def weights(folder):
    return torch.load(Path(folder) / "model.pt", weights_only=True)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_run(a, b):
    """Same metrics, run record and weights file: the selected weights, and the last ones (kept
    where they are not the selected) with their step."""
    assert rows(a) == rows(b)
    wa, wb = weights(a), weights(b)
    assert same_state(wa["model"], wb["model"])
    assert ("last" in wa) == ("last" in wb) and same_state(wa.get("last", {}), wb.get("last", {}))
    ra, rb = (json.loads((Path(f) / "run.json").read_text()) for f in (a, b))
    assert ra["selected"] == rb["selected"] and ra["steps"] == rb["steps"]
    assert wa["last_step"] == wb["last_step"] == ra["steps"]


def together(root, hps, **kw):
    dirs = [Path(root) / f"seed{hp['seed']}" for hp in hps]
    return runner.train_together(hps, dirs, [d / "model.pt" for d in dirs], CPU, **kw)


@pytest.fixture(scope="module")
def alone(tmp_path_factory, one_thread):
    """Each seed trained by itself (dropout on: the runs draw from the global RNG every step)."""
    root = tmp_path_factory.mktemp("alone")
    hps = [tiny_hparams("synthetic", seed=s, dropout=0.2) for s in SEEDS]
    for hp in hps:
        folder = root / f"seed{hp['seed']}"
        runner.train(hp, folder, folder / "model.pt", CPU)
    return root, hps


@pytest.mark.slow
def test_seeds_trained_together_equal_seeds_trained_alone(tmp_path, alone):
    root, hps = alone
    records = together(tmp_path, hps)
    assert [r["hparams"]["seed"] for r in records] == list(SEEDS)
    for s in SEEDS:
        assert_same_run(root / f"seed{s}", tmp_path / f"seed{s}")
        assert not (tmp_path / f"seed{s}" / "last.pt").exists()
    # the seeds differ from each other (the comparison above is not vacuous)
    assert rows(tmp_path / "seed0") != rows(tmp_path / "seed1")


def test_seeds_trained_together_keep_their_last_weights(tmp_path, alone):
    """Selected on validation (best) or last: each seed's weights file holds its last weights
    (`last`, unless they are the selected ones) and the eval scores them (last_test_<m>)."""
    root, hps = alone
    together(tmp_path, hps)
    for s in SEEDS:
        saved, folder = weights(tmp_path / f"seed{s}"), tmp_path / f"seed{s}"
        result = runner.test(folder / "model.pt", folder / "test.json", CPU)
        assert result == runner.test(root / f"seed{s}" / "model.pt", tmp_path / "alone.json", CPU)
        if "last" in saved:
            assert saved["step"] < saved["last_step"]
        else:
            assert saved["step"] == saved["last_step"]
            assert result["last_test_acc"] == result["test_acc"]
    picked = {weights(tmp_path / f"seed{s}")["step"] for s in SEEDS}
    assert min(picked) < 16, "no seed selected earlier weights: the test of `last` is vacuous"


@pytest.mark.slow
def test_a_killed_joint_job_resumes_every_seed_exactly(tmp_path, alone):
    root, hps = alone
    calls = []

    def stop(step):
        calls.append(step)
        if len(calls) == 6 * len(SEEDS) + 1:  # seed 0's 7th step: the others are at their 6th
            raise Stop

    with pytest.raises(Stop):
        together(tmp_path, hps, on_step=stop)
    assert all((tmp_path / f"seed{s}" / "last.pt").exists() for s in SEEDS)
    together(tmp_path, hps)
    for s in SEEDS:
        assert_same_run(root / f"seed{s}", tmp_path / f"seed{s}")
        assert json.loads((tmp_path / f"seed{s}" / "run.json").read_text())["resumed_at"]


@pytest.mark.slow
def test_finished_seeds_are_not_trained_again(tmp_path, alone):
    """Snakemake deletes the outputs of a failed job, also those of the seeds that had finished:
    their last.pt stays until the whole job is done, so a rerun writes them again without a step."""
    root, hps = alone
    together(tmp_path, hps, keep_last=True)
    for s in SEEDS:
        for name in ("model.pt", "run.json", "metrics.csv"):
            (tmp_path / f"seed{s}" / name).unlink()
    steps = []
    together(tmp_path, hps, on_step=steps.append)
    assert steps == []
    for s in SEEDS:
        assert_same_run(root / f"seed{s}", tmp_path / f"seed{s}")
        assert not (tmp_path / f"seed{s}" / "last.pt").exists()


@pytest.mark.parametrize("case", ["anomaly", "charlm"])
def test_other_families_seeds_trained_together_equal_seeds_trained_alone(
    tmp_path, case, one_thread
):
    """joint_seeds is a setting of every family: its runs (with their inputs, data facts and
    test files: charlm's vocabulary and sample.txt) come out as those of per-seed jobs."""
    from conftest import FAMILY_INPUTS

    inputs = FAMILY_INPUTS[case](tmp_path)
    hps = [tiny_hparams(case, seed=s) for s in (0, 1)]
    for hp in hps:
        folder = tmp_path / "alone" / f"seed{hp['seed']}"
        runner.train(hp, folder, folder / "model.pt", CPU, inputs=inputs)
    together(tmp_path / "joint", hps, inputs=inputs)
    for s in (0, 1):
        a, b = tmp_path / "alone" / f"seed{s}", tmp_path / "joint" / f"seed{s}"
        assert_same_run(a, b)
        tests = [
            runner.test(f / "model.pt", f / "out" / "test.json", CPU, inputs=inputs) for f in (a, b)
        ]
        assert tests[0] == tests[1]
        assert sorted(p.name for p in (a / "out").iterdir()) == sorted(
            p.name for p in (b / "out").iterdir()
        )
        for p in (a / "out").iterdir():
            assert p.read_bytes() == (b / "out" / p.name).read_bytes()
    assert rows(tmp_path / "joint" / "seed0") != rows(tmp_path / "joint" / "seed1")
