"""Reading and writing the per-run files (run.json, the selected weights, eval results)."""

import json
import os
from pathlib import Path

from .provenance import now, provenance
import torch


def write_json(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing run file {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt run file {path}: {err}") from err


def start_record(run_dir: Path, hparams: dict, device, n_params: int, previous: dict) -> dict:
    """run.json at the start of a run; `previous` is the record a resumed checkpoint carried."""
    record = {"status": "running", "hparams": hparams, "n_params": n_params, **provenance(device),
              "start_time": previous.get("start_time", now()), "end_time": None,
              "resumed_at": previous.get("resumed_at", []) + ([now()] if previous else [])}
    write_json(record, Path(run_dir) / "run.json")
    return record


def finish_record(run_dir: Path, record: dict, **result) -> dict:
    record = {**record, **result, "status": "done", "end_time": now()}
    write_json(record, Path(run_dir) / "run.json")
    return record


def load_weights(path: Path) -> dict:
    """The selected weights a train job wrote: {'model', 'hparams', 'step', 'select'}."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise RuntimeError(f"cannot read model weights {path}: {err}; rerun its train job") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "hparams" not in ckpt:
        raise RuntimeError(f"{path} holds no model weights of this project; rerun its train job")
    return ckpt
