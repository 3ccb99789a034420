"""GPU claiming without a GPU: the lock files that keep concurrent jobs on different devices."""

import subprocess
import sys

import pytest
import torch
from kvt import device


def test_each_claim_takes_a_free_slot_until_none_is_left(tmp_path, monkeypatch):
    monkeypatch.setenv("KVT_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_held", [])
    assert [device.claim_gpu(2, scope="t"), device.claim_gpu(2, scope="t")] == [0, 1]
    assert device.claim_gpu(2, scope="t") is None


@pytest.mark.slow
def test_another_process_skips_held_slots_and_gets_them_back_on_exit(tmp_path, monkeypatch):
    monkeypatch.setenv("KVT_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_held", [])
    assert device.claim_gpu(3, scope="p") == 0
    code = "from kvt.device import claim_gpu; print(claim_gpu(3, scope='p'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == "1"  # slot 0 is ours; the other process held 1 until it exited
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "1"


def test_pick_device(monkeypatch):
    assert device.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="tpu"):
        device.pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.pick_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        device.pick_device("cuda")


def test_slots_spread_jobs_over_the_gpus_before_sharing_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KVT_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_held", [])
    claims = [device.claim_gpu(2, scope="s", slots=3) for _ in range(7)]
    assert claims == [0, 1, 0, 1, 0, 1, None]  # 2 GPUs x 3 slots, first slots first
    with pytest.raises(ValueError, match="gpu_slots"):
        device.claim_gpu(2, scope="s", slots=0)


@pytest.mark.slow
def test_a_slot_freed_by_a_finished_job_is_claimed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("KVT_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_held", [])
    assert [device.claim_gpu(1, scope="f", slots=2) for _ in range(2)] == [0, 0]
    code = "from kvt.device import claim_gpu; print(claim_gpu(1, scope='f', slots=2))"
    full = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert full.stdout.strip() == "None"
    device._held.pop().close()  # a job of this GPU ended
    freed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert freed.stdout.strip() == "0"
