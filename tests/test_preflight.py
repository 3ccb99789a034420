"""kvt.preflight: before `make run`, the preset is chosen (printed on stdout): with a GPU the
paper preset; without one the machine is told so, with a rough CPU-hours estimate of the paper
preset, and gets the cpu preset unless a preset was asked for; all without importing torch."""

import os
import subprocess
import sys
from pathlib import Path

from kvt import preflight
from kvt.config import load_config
from kvt.families import FAMILIES
from kvt.families.base import Workload, train_flops
from kvt.preflight import workload

ROOT = Path(__file__).resolve().parents[1]


def _config(**overrides):
    return load_config(overrides, ROOT)


def _preflight(tmp_path, gpu_listing=None, *args):
    """Run the preflight in the repository with a PATH whose nvidia-smi lists `gpu_listing`
    (None: no nvidia-smi at all); report whether torch was imported."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if gpu_listing is not None:
        fake = bin_dir / "nvidia-smi"
        fake.write_text(f"#!/bin/sh\necho '{gpu_listing}'\n")
        fake.chmod(0o755)
    code = (
        "import sys, kvt.preflight as p; rc = p.main(sys.argv[1:]); "
        "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)"
    )
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_without_a_gpu_it_says_so_with_an_estimate_and_runs_the_cpu_preset(tmp_path):
    res = _preflight(tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["cpu", "no", "torch"]  # the chosen preset, then the probe's line
    err = res.stderr
    assert "no GPU found" in err and "'paper' preset" in err and "CPU-hours" in err
    assert "runs the 'cpu' preset instead" in err and "make run PRESET=paper" in err
    for name in FAMILIES:
        assert f"    {name}" in err


def _main(monkeypatch, capsys, gpu_listing, *args):
    """kvt.preflight.main in this process on a machine whose GPUs are `gpu_listing` -> (chosen
    preset, messages)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(preflight, "gpus", lambda: list(gpu_listing))
    monkeypatch.setattr(preflight, "core_gflops", lambda: 50.0)
    assert preflight.main(list(args)) == 0
    out, err = capsys.readouterr()
    return out.strip(), err


H200 = ["GPU 0: NVIDIA H200 (UUID: GPU-0)"]


def test_a_preset_asked_for_is_kept(monkeypatch, capsys):
    chosen, err = _main(monkeypatch, capsys, [], "preset=paper")  # no terminal: no pause
    assert chosen == "paper" and "instead" not in err
    assert "'paper' preset" in err and "CPU-hours" in err  # still told what it costs here
    chosen, err = _main(monkeypatch, capsys, [], "--config", "preset=smoke", "seeds=[0]")
    assert chosen == "smoke" and "instead" not in err
    assert _main(monkeypatch, capsys, H200, "preset=smoke")[0] == "smoke"
    # a list of presets comes back as one --config word that parses to the same list
    chosen, err = _main(monkeypatch, capsys, [], "preset=[smoke, extended]")
    assert chosen == "[smoke,extended]" and "'[smoke,extended]' preset" in err
    assert _main(monkeypatch, capsys, H200, "preset=[cpu,extended]")[0] == "[cpu,extended]"


def test_with_a_gpu_it_names_it_and_estimates_nothing(monkeypatch, capsys):
    chosen, err = _main(monkeypatch, capsys, H200)
    assert chosen == "paper"
    assert "1 GPU(s): GPU 0: NVIDIA H200" in err and "CPU-hours" not in err
    assert "gpu_slots=8" in err and "--resources gpu=8" in err  # how to share it
    assert not any(f"{name}=" in err for name in FAMILIES)  # the hint names no family
    chosen, err = _main(monkeypatch, capsys, H200 * 2, "gpu_slots=4")
    assert "2 GPU(s)" in err and "gpu_slots=8" not in err
    chosen, err = _main(monkeypatch, capsys, H200, "--config", "device=cpu")
    assert "CPU-hours" in err and chosen == "cpu"  # the configured device wins


def test_the_gpu_listing_comes_from_nvidia_smi(tmp_path):
    res = _preflight(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-0)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["paper", "no", "torch"]
    assert "1 GPU(s): GPU 0: NVIDIA H200" in res.stderr


def test_a_bad_override_is_reported(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert preflight.main(["preset=nope"]) == 1
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_estimate_follows_the_work():
    paper, cpu = workload(_config()), workload(_config(preset="cpu"))
    assert set(paper) == set(FAMILIES)
    for name in FAMILIES:
        assert paper[name][1] > 20 * cpu[name][1] > 0
    assert paper["synthetic"][0] == 720
    hp = {"d_model": 64, "attention": "qkv"}
    work = Workload(tokens=1000, seq=8, mlp=2, blocks=3)
    per_token = 2 * (4 * 64 * 64 + 2 * 2 * 64 * 64) + 4 * 8 * 64
    assert train_flops(hp, work) == 3 * 3 * per_token * 1000
    assert train_flops({**hp, "attention": "kv"}, work) == 3 * 3 * (per_token - 2 * 64 * 64) * 1000
    # qkv_pos has a query projection too; kv_pos does not
    assert train_flops({**hp, "attention": "qkv_pos"}, work) == train_flops(hp, work)
    assert train_flops({**hp, "attention": "kv_pos"}, work) == train_flops(
        {**hp, "attention": "kv"}, work
    )


def test_make_run_calls_it_before_snakemake():
    recipe = subprocess.run(
        ["make", "-n", "run", "VENV=/nonexistent"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    pre = next(i for i, line in enumerate(recipe) if "-m kvt.preflight" in line)
    run = next(
        i for i, line in enumerate(recipe) if "snakemake --cores all" in line and "echo" not in line
    )
    assert pre < run and "--keep-going" in recipe[run]
