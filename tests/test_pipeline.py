"""End to end through Snakemake: fault drills. A train job of every family killed with its whole
Snakemake process at a random step resumes from its last.pt on the next run (after --unlock and
with --rerun-incomplete, as a user would do) and ends with the same metrics and test result as an
uninterrupted run; bad data stops a run before training; a second pipeline is refused."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kvt.families.base import JOINT_NAME

ROOT = Path(__file__).resolve().parents[1]
RUN = "results/synthetic/copy/n8-d16-l1-h2/kv/seed0"
SYNTHETIC = ("attentions=[kv]", "synthetic={tasks: [copy], train_size: 16000, epochs: 1}")


def snakemake(workdir: Path, *extra: str, config=SYNTHETIC) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow/Snakefile"),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--directory",
        str(workdir),
        "--cores",
        "1",
        *extra,
        "--config",
        "preset=smoke",
        *config,
    ]


def metric_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]


# family (task): (smoke preset overrides, the run folder). Each run validates, and so writes last.pt,
# several times, and lasts long enough after its first checkpoint to be killed between two.
KILLED = {
    "synthetic": (SYNTHETIC, RUN),
    "vision": (
        ("vision={tasks: [mnist], mnist: {epochs: 4, batch_size: 10}}",),
        "results/vision/mnist/d16-l1-h2/kv_pos/seed0",
    ),
    "anomaly": (
        ("anomaly={epochs: 4, batch_size: 16}",),
        "results/anomaly/cifar100/d16-l1-h2/kv_pos/seed0",
    ),
    "charlm": (
        ("charlm={shakespeare: {iterations: 300, val_every: 30}}",),
        "results/charlm/shakespeare/d16-l1-h2/kv_pos/seed0",
    ),
    "translation": (
        ("translation={tasks: [multi30k_de_en], multi30k_de_en: {epochs: 4, batch_size: 10}}",),
        "results/translation/multi30k_de_en/d16-l1-h2/kv_pos/seed0",
    ),
    "human_numbers": (
        ("human_numbers={epochs: 10, batch_size: 256, val_per_epoch: 2}",),
        "results/human_numbers/numbers/lr0.003-n8/kv_pos/seed0",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", KILLED)
def test_killed_train_job_resumes_through_snakemake(tmp_path, case):
    config, run = KILLED[case]
    target = f"{run}/test.json"
    ref, work = tmp_path / "ref", tmp_path / "work"
    started = time.time()
    done = subprocess.run(
        snakemake(ref, target, config=config), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ref_rows = metric_rows(ref / run)
    assert len(ref_rows) >= 4, "too few checkpoints to kill the run between two"

    proc = subprocess.Popen(
        snakemake(work, target, config=config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = work / run / "metrics.csv"
    delay = random.Random(case).uniform(0, 0.3)  # a random step after the first checkpoint
    deadline = time.time() + 300
    while (
        time.time() < deadline and proc.poll() is None
    ):  # kill after the first checkpoint past step 0
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the train job finished before it could be killed"
    assert (work / run / "last.pt").exists() and not (work / run / "model.pt").exists()
    killed_rows = len(metric_rows(work / run))
    assert killed_rows < len(ref_rows)

    subprocess.run(
        snakemake(work, "--unlock", config=config), capture_output=True, timeout=300, check=True
    )
    again = subprocess.run(
        snakemake(work, "--rerun-incomplete", target, config=config),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    family, rest = run.split("/", 2)[1:]
    log = (work / f"results/logs/{family}/train/{rest}.log").read_text()
    assert "resuming from" in log
    assert metric_rows(work / run) == ref_rows
    result = json.loads((work / target).read_text())
    assert result == json.loads((ref / target).read_text())
    assert json.loads((work / run / "run.json").read_text())["resumed_at"]
    print(
        f"{case}: killed after {killed_rows} of {len(ref_rows)} validations; "
        f"{time.time() - started:.0f} s in all"
    )


@pytest.mark.slow
def test_joint_seeds_jobs_write_what_separate_jobs_write(tmp_path):
    """synthetic.joint_seeds: one job trains both seeds and one tests them; each run's metrics and
    test result are those of its own jobs."""
    results = {}
    for joint in ("false", "true"):
        workdir = tmp_path / joint
        config = (
            "attentions=[kv]",
            "seeds=[0, 1]",
            f"synthetic={{tasks: [copy], train_size: 4000, epochs: 1, joint_seeds: {joint}}}",
        )
        targets = [f"{RUN[:-1]}{s}/test.json" for s in (0, 1)]
        done = subprocess.run(
            snakemake(workdir, *targets, config=config), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        logs = sorted((workdir / "results/logs/synthetic/train").rglob("*.log"))
        assert [p.stem for p in logs] == ([JOINT_NAME] if joint == "true" else ["seed0", "seed1"])
        runs = [workdir / f"{RUN[:-1]}{s}" for s in (0, 1)]  # RUN ends in seed0
        results[joint] = [(metric_rows(r), json.loads((r / "test.json").read_text())) for r in runs]
    assert results["true"] == results["false"]
    assert results["true"][0] != results["true"][1]


@pytest.mark.slow
def test_keep_last_reruns_nothing_but_a_hyperparameter_does(tmp_path):
    """keep_last is not a hyperparameter: toggling it leaves a finished run alone, while changing
    a run's setting (its hparams, a Snakemake param) reruns it."""
    target = f"{RUN}/test.json"
    done = subprocess.run(snakemake(tmp_path, target), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    def planned(*config):
        cmd = snakemake(tmp_path, "-n", target) + list(config)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout + out.stderr

    assert "Nothing to be done" in planned("keep_last=true")
    assert "synthetic_train" in planned(
        "synthetic={tasks: [copy], train_size: 16000, epochs: 1, lr: 0.002}"
    )


@pytest.mark.slow
def test_an_altered_text_file_stops_the_data_rule_and_nothing_trains(tmp_path):
    """A staged Tiny Shakespeare that is not the recorded file: the data rule fails naming it,
    no train job starts, and the file is left as it was."""
    from kvt.data import text

    staged = tmp_path / "data" / text.SHAKESPEARE
    staged.parent.mkdir(parents=True)
    staged.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200)
    before = staged.read_bytes()
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow/Snakefile"),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--directory",
        str(tmp_path),
        "--cores",
        "1",
        "--config",
        "preset=smoke",
        "families=[charlm]",
        f"data={{dir: {tmp_path / 'data'}, download: false}}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert f"{staged} is truncated or altered" in res.stdout + res.stderr
    assert not (tmp_path / "results/charlm").exists()
    assert staged.read_bytes() == before


@pytest.mark.slow
def test_bad_image_files_stop_the_run_before_training_and_are_kept(tmp_path):
    """Vision: staged files that are not the official ones stop the data rule; a file altered
    after the data rule checked it stops the train job. Each error names the file, no train job
    writes a model, and the files are left as they were."""
    from kvt.data.image_fixtures import write_image_fixture

    run = KILLED["vision"][1]
    data = tmp_path / "data"
    write_image_fixture("mnist", data)
    label = data / "MNIST/raw/train-labels-idx1-ubyte"
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    staged = (*KILLED["vision"][0], f"data={{dir: {data}, download: false, fixtures: false}}")
    res = subprocess.run(
        snakemake(tmp_path, f"{run}/test.json", config=staged),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode != 0
    assert f"{label} is truncated or altered" in res.stdout + res.stderr
    assert not (tmp_path / "results/vision").exists()
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before

    fixtures = (*KILLED["vision"][0], f"data={{dir: {tmp_path / 'fx'}, fixtures: true}}")
    made = subprocess.run(
        snakemake(tmp_path, "results/data/mnist.json", config=fixtures),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    label = tmp_path / "fx/MNIST/raw/train-labels-idx1-ubyte"
    altered = label.read_bytes()[:-1] + bytes([label.read_bytes()[-1] ^ 1])  # one label changed
    label.write_bytes(altered)
    res = subprocess.run(
        snakemake(tmp_path, f"{run}/test.json", config=fixtures),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode != 0
    log = (tmp_path / f"results/logs/vision/train/{run.split('/', 2)[2]}.log").read_text()
    assert f"{label} changed since the data rule checked it" in log
    assert not (tmp_path / run / "model.pt").exists() and not (tmp_path / run / "last.pt").exists()
    assert label.read_bytes() == altered


@pytest.mark.slow
def test_a_second_pipeline_on_the_same_folder_is_refused(tmp_path):
    """Two Snakemake processes on one results folder: the second stops with Snakemake's lock
    message and changes nothing; the first completes."""
    target = f"{RUN}/test.json"
    first = subprocess.Popen(
        snakemake(tmp_path, target),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.time() + 300
    while (
        time.time() < deadline
        and first.poll() is None
        and not (locks.exists() and any(locks.iterdir()))
    ):
        time.sleep(0.05)
    # Hold the first pipeline (and its job) still while the second tries: however slowly the
    # second starts, the first's lock is there, not a race against the first finishing.
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        assert first.poll() is None and any(locks.iterdir()), "the first pipeline ended too soon"
        second = subprocess.run(
            snakemake(tmp_path, target), capture_output=True, text=True, timeout=300
        )
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out = second.stdout + second.stderr
    assert second.returncode != 0 and "Directory cannot be locked" in out, out[-2000:]
    first.wait(timeout=600)
    assert first.returncode == 0 and (tmp_path / target).exists()
