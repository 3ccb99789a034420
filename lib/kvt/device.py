"""Pick the device a job runs on, claiming a free GPU when several jobs share a node.

Snakemake's `--resources gpu=N` only counts jobs and never sets CUDA_VISIBLE_DEVICES, so each
job claims a device itself: an exclusive lock file per GPU slot, held for the life of the
process. A GPU has `slots` of them (config `gpu_slots`): that many jobs share it at once, which
suits the small models that leave a large GPU mostly idle. Under SLURM (or any scheduler that
sets CUDA_VISIBLE_DEVICES) the visible devices are already the job's own, and the locks only
separate jobs that share them.
"""

import fcntl
import os
import tempfile
from pathlib import Path

import torch

_held = []  # open lock files, kept for the life of the process


def lock_dir() -> Path:
    return Path(os.environ.get("KVT_GPU_LOCK_DIR", tempfile.gettempdir()))


def claim_gpu(count: int, scope: str = "", slots: int = 1) -> int | None:
    """Index (0..count-1) of the GPU of a slot this process now holds exclusively, or None if all
    count x slots are taken. Every GPU's first slot is taken before any second slot: jobs spread
    over the GPUs before they share one."""
    if slots < 1:
        raise ValueError(f"gpu_slots must be at least 1, got {slots}")
    tag = scope or os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_")
    for slot in range(slots):
        for index in range(count):
            suffix = f"-{slot}" if slot else ""  # slot 0 keeps the one-slot name
            handle = open(lock_dir() / f"kvt-gpu-{tag}-{index}{suffix}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held.append(handle)
            return index
    return None


def pick_device(preference: str = "auto", slots: int = 1) -> torch.device:
    """'cpu', 'cuda' (fail without one) or 'auto' (a free GPU slot if there is one, else the CPU)."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if preference == "cuda":
            raise RuntimeError("device: cuda was asked for but torch sees no CUDA device")
        return torch.device("cpu")
    index = claim_gpu(torch.cuda.device_count(), slots=slots)
    if index is None:  # more jobs than slots (no --resources gpu=N): share GPU 0 rather than fail
        index = 0
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
