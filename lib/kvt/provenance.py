"""What a run records about where and how it ran (run.json)."""

import datetime
import hashlib
import os
import platform
import subprocess
from pathlib import Path

import torch


def _git(*args: str, cwd: Path) -> str | None:
    try:
        # No optional index lock: concurrent jobs in one checkout all ask git at their start.
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
        out = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def provenance(device, cwd: Path | None = None) -> dict:
    """git commit, dirty flag and a hash of the uncommitted changes (tracked files: `git diff
    HEAD`), versions, device, host and scheduler job id."""
    cwd = Path(cwd or Path(__file__).resolve().parent)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    diff = _git("diff", "HEAD", cwd=cwd) if status else None
    return {
        "git_commit": _git("rev-parse", "HEAD", cwd=cwd),
        "git_dirty": None if status is None else bool(status),
        "git_diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "host": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "threads": torch.get_num_threads(),
    }
