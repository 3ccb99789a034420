"""End to end through Snakemake: a train job killed with its whole Snakemake process resumes from
its last.pt on the next run (after --unlock and with --rerun-incomplete, as a user would do) and
ends with the same metrics and test result as an uninterrupted run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = "results/synthetic/copy/n8-d16-l1-h2/kv/seed0"


def snakemake(workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow/Snakefile"),
            "--configfile", str(ROOT / "config.yaml"), "--directory", str(workdir), "--cores", "1",
            *extra, "--config", "preset=smoke", "attentions=[kv]",
            "synthetic={tasks: [copy], train_size: 16000, epochs: 1}"]


def metric_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_killed_train_job_resumes_through_snakemake(tmp_path):
    target = f"{RUN}/test.json"
    ref, work = tmp_path / "ref", tmp_path / "work"
    done = subprocess.run(snakemake(ref, target), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    proc = subprocess.Popen(snakemake(work, target), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    metrics = work / RUN / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill after the first checkpoint past step 0
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the train job finished before it could be killed"
    assert (work / RUN / "last.pt").exists() and not (work / RUN / "model.pt").exists()

    subprocess.run(snakemake(work, "--unlock"), capture_output=True, timeout=300, check=True)
    again = subprocess.run(snakemake(work, "--rerun-incomplete", target), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (work / "results/logs/synthetic/train/copy/n8-d16-l1-h2/kv/seed0.log").read_text()
    assert "resuming from" in log
    assert metric_rows(work / RUN) == metric_rows(ref / RUN)
    result = json.loads((work / target).read_text())
    assert result == json.loads((ref / target).read_text())
    assert json.loads((work / RUN / "run.json").read_text())["resumed_at"]


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
    assert "synthetic_train" in planned("synthetic={tasks: [copy], train_size: 16000, epochs: 1, lr: 0.002}")


@pytest.mark.slow
def test_an_altered_text_file_stops_the_data_rule_and_nothing_trains(tmp_path):
    """A staged Tiny Shakespeare that is not the recorded file: the data rule fails naming it,
    no train job starts, and the file is left as it was."""
    from kvt.data import text

    staged = tmp_path / "data" / text.SHAKESPEARE
    staged.parent.mkdir(parents=True)
    staged.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200)
    before = staged.read_bytes()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow/Snakefile"),
           "--configfile", str(ROOT / "config.yaml"), "--directory", str(tmp_path), "--cores", "1",
           "--config", "preset=smoke", "families=[nlp]", "nlp={tasks: [shakespeare]}",
           f"data={{dir: {tmp_path / 'data'}, download: false}}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert f"{staged} is truncated or altered" in res.stdout + res.stderr
    assert not (tmp_path / "results/nlp").exists()
    assert staged.read_bytes() == before


@pytest.mark.slow
def test_a_second_pipeline_on_the_same_folder_is_refused(tmp_path):
    """Two Snakemake processes on one results folder: the second stops with Snakemake's lock
    message and changes nothing; the first completes."""
    target = f"{RUN}/test.json"
    first = subprocess.Popen(snakemake(tmp_path, target), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and not (locks.exists() and any(locks.iterdir())):
        time.sleep(0.05)
    assert first.poll() is None, "the first pipeline ended before the second could start"
    second = subprocess.run(snakemake(tmp_path, target), capture_output=True, text=True, timeout=300)
    out = second.stdout + second.stderr
    assert second.returncode != 0 and "Directory cannot be locked" in out, out[-2000:]
    first.wait(timeout=600)
    assert first.returncode == 0 and (tmp_path / target).exists()
