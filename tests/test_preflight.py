"""kvt.preflight: before `make run`, a machine without a GPU is told so, with a rough CPU-hours
estimate and the cpu preset's command, without importing torch; with a GPU nothing is estimated."""

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


def test_without_a_gpu_it_says_so_with_an_estimate_and_the_cpu_preset(tmp_path):
    res = _preflight(tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no torch" in res.stdout
    err = res.stderr
    assert "no GPU found" in err and "'paper' preset" in err and "make cpu" in err
    for name in FAMILIES:
        assert f"    {name}" in err
    assert "CPU-hours" in err


def test_with_a_gpu_it_names_it_and_estimates_nothing(tmp_path):
    res = _preflight(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-0)")
    assert res.returncode == 0, res.stderr
    assert "1 GPU(s): GPU 0: NVIDIA H200" in res.stderr and "CPU-hours" not in res.stderr
    assert "gpu_slots=8" in res.stderr and "--resources gpu=8" in res.stderr  # how to share it
    (tmp_path / "shared").mkdir()
    shared = _preflight(tmp_path / "shared", "GPU 0: NVIDIA H200 (UUID: GPU-0)", "gpu_slots=4")
    assert "1 GPU(s)" in shared.stderr and "gpu_slots=8" not in shared.stderr
    (tmp_path / "again").mkdir()
    forced = _preflight(tmp_path / "again", "GPU 0: NVIDIA H200 (UUID: GPU-0)", "--config", "device=cpu")
    assert "CPU-hours" in forced.stderr  # the configured device wins


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
    # qkv_pos has a query projection too; kv_pos does not
    assert train_flops({**hp, "attention": "qkv_pos"}, work) == train_flops(hp, work)
    assert train_flops({**hp, "attention": "kv_pos"}, work) == train_flops({**hp, "attention": "kv"}, work)


def test_make_run_calls_it_before_snakemake():
    recipe = subprocess.run(["make", "-n", "run", "VENV=/nonexistent"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60).stdout.splitlines()
    pre = next(i for i, line in enumerate(recipe) if "-m kvt.preflight" in line)
    run = next(i for i, line in enumerate(recipe) if "snakemake --cores all" in line)
    assert pre < run
