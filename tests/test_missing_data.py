"""kvt.missing_data and `make run`'s end: after a run that kept going past failed data jobs, each
dataset whose data job left a log but no manifest is named with the command that stages it, read
from the results folder alone; make keeps Snakemake's failure."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kvt.missing_data import failed, main, report

ROOT = Path(__file__).resolve().parents[1]


def _data_job(results: Path, dataset: str, log: str, manifest: bool) -> Path:
    """What a data job leaves: its log, and its manifest when it succeeded."""
    path = results / "logs" / "data" / f"{dataset}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(log)
    if manifest:
        (results / "data").mkdir(parents=True, exist_ok=True)
        (results / "data" / f"{dataset}.json").write_text("{}")
    return path


def test_a_log_without_a_manifest_is_a_failed_dataset(tmp_path):
    _data_job(
        tmp_path, "mnist", "DataMissingError: dataset mnist: 4 file(s) missing\n", manifest=False
    )
    _data_job(tmp_path, "digits", "digits: 1797 images\n", manifest=True)
    _data_job(tmp_path, "shakespeare", "FetchError: no network\n", manifest=False)
    assert failed(tmp_path) == ["mnist", "shakespeare"]
    assert failed(tmp_path / "nothing-ran") == []


def test_logs_older_than_the_run_are_not_its_own(tmp_path):
    old = _data_job(tmp_path, "cifar10", "error\n", manifest=False)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    _data_job(tmp_path, "cifar100", "error\n", manifest=False)
    assert failed(tmp_path, since=time.time() - 60) == ["cifar100"]
    assert failed(tmp_path) == ["cifar10", "cifar100"]


def test_the_report_names_each_dataset_with_its_staging_command_and_what_the_folder_holds(tmp_path):
    _data_job(
        tmp_path,
        "fashion_mnist",
        "Traceback (most recent call last):\n  File 'x.py'\n"
        "kvt.data.vision.DataMissingError: dataset fashion_mnist: 4 file(s) missing:\n"
        "  FashionMNIST/raw/train-images-idx3-ubyte\nThey go in data\n",
        manifest=False,
    )
    _data_job(tmp_path, "multi30k", "FetchError: could not reach the host\n", manifest=False)
    _data_job(tmp_path, "digits", "ValueError: broken wheel\n", manifest=False)
    _data_job(tmp_path, "mnist", "ok\n", manifest=True)
    text = report(tmp_path, "/data/kvt")
    assert "3 dataset(s) could not be prepared" in text
    lines = text.splitlines()
    staged = [line for line in lines if "kvt.data.acquire stage" in line]
    assert [line.split("acquire stage ")[1].split()[0] for line in staged] == [
        "fashion_mnist",
        "multi30k",
    ]
    assert all(line.endswith("FOLDER --root /data/kvt") for line in staged)
    assert (
        "DataMissingError: dataset fashion_mnist: 4 file(s) missing" in text
    )  # why: the exception
    assert "FetchError: could not reach the host" in text
    assert "train-images-idx3-ubyte.gz" in text and "t10k-labels-idx1-ubyte.gz" in text
    assert "FOLDER/multi30k/dataset/master/data/task1/raw/test_2016_flickr.de.gz" in text
    assert "not staged from a folder" in text  # digits: nothing to stage, its log says why
    assert "mnist:" not in text.replace("fashion_mnist:", "")
    assert report(tmp_path / "clean", "data") == ""


def test_the_cli_reads_the_results_folder_from_the_config(tmp_path, monkeypatch, capsys):
    _data_job(tmp_path, "cifar10", "DataMissingError\n", manifest=False)
    monkeypatch.chdir(ROOT)
    assert main(["--since", "0", "-n", "--config", f"results={tmp_path}", "preset=cpu"]) == 0
    err = capsys.readouterr().err
    assert "cifar10: its data job failed" in err and "cifar-10-python.tar.gz" in err
    assert main([f"results={tmp_path / 'none'}"]) == 0 and capsys.readouterr().err == ""
    assert main(["preset=nope"]) == 0  # Snakemake has reported a bad config already


def _fake_venv(tmp_path: Path, results: Path, snakemake_rc: int) -> Path:
    """A VENV whose python is this interpreter and whose snakemake records its arguments, leaves
    one failed data job (mnist) and one that succeeded (digits), and exits with snakemake_rc."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "bin" / "snakemake").write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/snakemake.args\n'
        f"mkdir -p {results}/logs/data {results}/data\n"
        f"echo 'DataMissingError: dataset mnist: 4 file(s) missing' > {results}/logs/data/mnist.log\n"
        f"echo ok > {results}/logs/data/digits.log && echo '{{}}' > {results}/data/digits.json\n"
        f"exit {snakemake_rc}\n"
    )
    for exe in (venv / "bin").iterdir():
        exe.chmod(0o755)
    return venv


def _make_run(tmp_path: Path, snakemake_rc: int, *make_args: str) -> subprocess.CompletedProcess:
    results = tmp_path / "results"
    venv = _fake_venv(tmp_path, results, snakemake_rc)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no nvidia-smi: the machine has no GPU
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(
        [
            "make",
            "-s",
            "-o",
            f"{venv}/.installed",
            "run",
            f"VENV={venv}",
            f"RUN_CONFIG={tmp_path}/run.yaml",
            f"ARGS=--config results={results}",
            *make_args,
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.parametrize("snakemake_rc", [1, 0])
def test_make_run_keeps_going_reports_the_missing_data_and_keeps_snakemakes_status(
    tmp_path, snakemake_rc
):
    res = _make_run(tmp_path, snakemake_rc)
    assert (res.returncode != 0) == (snakemake_rc != 0), res.stderr
    args = (tmp_path / "snakemake.args").read_text().split()
    assert "--keep-going" in args and args[args.index("--configfile") + 1] == f"{tmp_path}/run.yaml"
    assert (tmp_path / "run.yaml").read_text().strip() == "preset: cpu"  # no GPU: the cpu preset
    assert "no GPU found" in res.stderr and "runs the 'cpu' preset instead" in res.stderr
    assert "1 dataset(s) could not be prepared" in res.stderr
    assert "kvt.data.acquire stage mnist FOLDER" in res.stderr and "digits:" not in res.stderr


@pytest.mark.slow
def test_make_run_preset_chooses(tmp_path):
    res = _make_run(tmp_path, 0, "PRESET=smoke")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run.yaml").read_text().strip() == "preset: smoke"
    assert "instead" not in res.stderr
