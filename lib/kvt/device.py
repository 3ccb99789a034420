"""Pick the device a job runs on, claiming a free GPU when several jobs share a node.

Snakemake's `--resources gpu=N` only counts jobs and never sets CUDA_VISIBLE_DEVICES, so each
job claims a device itself: an exclusive lock file per GPU slot, held for the life of the
process. Under SLURM (or any scheduler that sets CUDA_VISIBLE_DEVICES) the visible devices are
already the job's own, and the locks only separate jobs that share them.
"""

import fcntl
import os
import tempfile
from pathlib import Path

import torch

_held = []  # open lock files, kept for the life of the process


def lock_dir() -> Path:
    return Path(os.environ.get("KVT_GPU_LOCK_DIR", tempfile.gettempdir()))


def claim_gpu(count: int, scope: str = "") -> int | None:
    """Index of a GPU slot (0..count-1) this process now holds exclusively, or None if all are taken."""
    tag = scope or os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_")
    for index in range(count):
        handle = open(lock_dir() / f"kvt-gpu-{tag}-{index}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        return index
    return None


def pick_device(preference: str = "auto") -> torch.device:
    """'cpu', 'cuda' (fail without one) or 'auto' (a free GPU if there is one, else the CPU)."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if preference == "cuda":
            raise RuntimeError("device: cuda was asked for but torch sees no CUDA device")
        return torch.device("cpu")
    index = claim_gpu(torch.cuda.device_count())
    if index is None:  # more jobs than GPUs (no --resources gpu=N): share GPU 0 rather than fail
        index = 0
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
