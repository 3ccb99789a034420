"""Reading and writing the per-run files (run.json, the selected weights, eval results)."""

from pathlib import Path

import torch

from .jsonfiles import write_json
from .provenance import now, provenance


def start_record(
    run_dir: Path,
    hparams: dict,
    device,
    n_params: int,
    previous: dict,
    flops: int | None = None,
    options: dict | None = None,
) -> dict:
    """run.json at the start of a run; `previous` is the record a resumed checkpoint carried;
    flops: matmul FLOPs of one forward pass on one example; options: how it computes
    (runner.Options)."""
    record = {
        "status": "running",
        "hparams": hparams,
        "options": options or {},
        "n_params": n_params,
        "flops": flops,
        **provenance(device),
        "start_time": previous.get("start_time", now()),
        "end_time": None,
        "resumed_at": previous.get("resumed_at", []) + ([now()] if previous else []),
    }
    write_json(record, Path(run_dir) / "run.json")
    return record


def finish_record(run_dir: Path, record: dict, **result) -> dict:
    record = {**record, **result, "status": "done", "end_time": now()}
    write_json(record, Path(run_dir) / "run.json")
    return record


def load_weights(path: Path) -> dict:
    """The selected weights a train job wrote: {'model', 'hparams', 'step', 'select'}."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # data only, never code
    except Exception as err:
        raise RuntimeError(f"cannot read model weights {path}: {err}; rerun its train job") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "hparams" not in ckpt:
        raise RuntimeError(f"{path} holds no model weights of this project; rerun its train job")
    return ckpt
