"""kvt.preflight: before `make run`, the preset is chosen (printed on stdout): with a GPU the
paper preset; without one the machine is told so, with a rough CPU-hours estimate of the paper
preset, and gets the cpu preset unless a preset was asked for; all without importing torch."""

import os
import subprocess
import sys
from pathlib import Path

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
    code = ("import sys, kvt.preflight as p; rc = p.main(sys.argv[1:]); "
            "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)")
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_without_a_gpu_it_says_so_with_an_estimate_and_runs_the_cpu_preset(tmp_path):
    res = _preflight(tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["cpu", "no", "torch"]  # the chosen preset, then the probe's line
    err = res.stderr
    assert "no GPU found" in err and "'paper' preset" in err and "CPU-hours" in err
    assert "runs the 'cpu' preset instead" in err and "make run PRESET=paper" in err
    for name in FAMILIES:
        assert f"    {name}" in err


def test_a_preset_asked_for_is_kept(tmp_path):
    forced = _preflight(tmp_path, None, "preset=paper")  # no terminal: no pause
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.split()[0] == "paper" and "instead" not in forced.stderr
    assert "'paper' preset" in forced.stderr  # still told what it costs here
    (tmp_path / "smoke").mkdir()
    smoke = _preflight(tmp_path / "smoke", None, "--config", "preset=smoke", "seeds=[0]")
    assert smoke.stdout.split()[0] == "smoke" and "instead" not in smoke.stderr
    (tmp_path / "gpu").mkdir()
    on_gpu = _preflight(tmp_path / "gpu", "GPU 0: NVIDIA H200 (UUID: GPU-0)", "preset=smoke")
    assert on_gpu.stdout.split()[0] == "smoke"


def test_with_a_gpu_it_names_it_and_estimates_nothing(tmp_path):
    res = _preflight(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-0)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == "paper"
    assert "1 GPU(s): GPU 0: NVIDIA H200" in res.stderr and "CPU-hours" not in res.stderr
    assert "gpu_slots=8" in res.stderr and "--resources gpu=8" in res.stderr  # how to share it
    assert not any(f"{name}=" in res.stderr for name in FAMILIES)  # the hint names no family
    (tmp_path / "shared").mkdir()
    shared = _preflight(tmp_path / "shared", "GPU 0: NVIDIA H200 (UUID: GPU-0)", "gpu_slots=4")
    assert "1 GPU(s)" in shared.stderr and "gpu_slots=8" not in shared.stderr
    (tmp_path / "again").mkdir()
    forced = _preflight(tmp_path / "again", "GPU 0: NVIDIA H200 (UUID: GPU-0)", "--config", "device=cpu")
    assert "CPU-hours" in forced.stderr  # the configured device wins
    assert forced.stdout.split()[0] == "cpu"


def test_a_bad_override_is_reported(tmp_path):
    res = _preflight(tmp_path, None, "preset=nope")
    assert res.returncode == 1 and "unknown preset 'nope'" in res.stderr


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


def test_make_run_calls_it_before_snakemake():
    recipe = subprocess.run(["make", "-n", "run", "VENV=/nonexistent"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60).stdout.splitlines()
    pre = next(i for i, line in enumerate(recipe) if "-m kvt.preflight" in line)
    run = next(i for i, line in enumerate(recipe) if "snakemake --cores all" in line and "echo" not in line)
    assert pre < run and "--keep-going" in recipe[run]
