"""One table with a row per run (every parameter and metric), built from the per-run files, so any
tool (pandas, a spreadsheet, the tables and figures here) reads one file instead of a tree; and a
diff of two of its rows, to see what separates two runs.

    python -m kvt.report.summary results/summary.csv RUN_A RUN_B   # diff two runs

A run is named by its row number or by its run folder (or the folder's tail, e.g.
`reverse/n64-d64-l2-h2/kv/seed0`).
"""

import json
import math
import sys
from pathlib import Path

import pandas as pd

from ..jsonfiles import read_json

IDENTITY = ["family", "task", "cfg", "attention", "seed", "run_dir"]
RESULT_HEAD = [
    "n_params",
    "flops",
    "steps",
    "train_seconds",
    "best_step",
]  # then val_*, final_val_*,
# test_* (the selected weights), last_test_* (the last weights)
RESULT_TAIL = ["status", "resumes"]
PROVENANCE = [
    "device",
    "device_name",
    "host",
    "threads",
    "git_commit",
    "git_dirty",
    "git_diff_sha256",
    "torch",
    "python",
    "start_time",
    "end_time",
    "slurm_job_id",
]
METRIC_COLUMNS = ["step", "epoch", "wall_time", "train_loss", "val_loss", "lr"]  # and val_<metric>
SORT_KEYS = ["family", "task", "seq_len", "d_model", "depth", "heads", "cfg", "attention", "seed"]


def _read_json(path: Path) -> dict:
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(
            f"corrupt run file {path}: expected a JSON object, got {type(obj).__name__}"
        )
    return obj


def _need(obj: dict, key: str, path: Path):
    if key not in obj:
        raise ValueError(f"run file {path} lacks '{key}'")
    return obj[key]


def read_metrics(path: Path) -> pd.DataFrame:
    """A run's metrics.csv (one row per validation), checked for the trainer's columns."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing metrics file {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt metrics file {path}: {err}") from err
    missing = [c for c in METRIC_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"corrupt metrics file {path}: no column(s) {', '.join(missing)}")
    if df.empty:
        raise ValueError(f"metrics file {path} has no rows")
    try:
        return df.astype({c: float for c in df.columns if c != "step"}).astype({"step": int})
    except (ValueError, TypeError) as err:
        raise ValueError(f"corrupt metrics file {path}: {err}") from err


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def run_row(run_json: Path, test_json: Path) -> dict:
    """The summary row of one run: its run.json, the metrics.csv beside it, and its test.json."""
    run_json, test_json = Path(run_json), Path(test_json)
    run, test = _read_json(run_json), _read_json(test_json)
    if run.get("status") != "done":
        raise ValueError(
            f"run file {run_json} has status {run.get('status')!r}, not 'done': "
            "the run has not finished"
        )
    hparams, selected = _need(run, "hparams", run_json), _need(run, "selected", run_json)
    metrics_path = run_json.parent / "metrics.csv"
    metrics = read_metrics(metrics_path)
    last = metrics.iloc[-1]
    best_step = _need(selected, "step", run_json)
    if "step" in test and test["step"] != best_step:
        raise ValueError(
            f"{test_json} tested step {test['step']} but {run_json} selected step "
            f"{best_step}: the weights changed after the test; rerun the eval job"
        )
    val_columns = [c for c in metrics.columns if c.startswith("val_")]
    if "val_loss" in selected:
        val = {c: float(selected.get(c, math.nan)) for c in val_columns}
    else:  # select == "last": the selected weights are those of the last validation
        val = {c: float(last[c]) for c in val_columns}
    row = {"run_dir": str(run_json.parent)}
    reserved = set(IDENTITY + RESULT_HEAD + RESULT_TAIL + PROVENANCE) - {
        "family",
        "task",
        "cfg",
        "attention",
        "seed",
    }
    for key, value in _flatten(hparams).items():
        row[f"hp.{key}" if key in reserved else key] = value
    for key in ("family", "task", "cfg", "attention", "seed"):
        _need(hparams, key, run_json)
    if "last_step" in test and run.get("steps") is not None and test["last_step"] != run["steps"]:
        raise ValueError(
            f"{test_json} tested the last weights of step {test['last_step']} but "
            f"{run_json} ended at step {run['steps']}: rerun the eval job"
        )
    tests = {k: v for k, v in test.items() if is_test_score(k)}
    if not tests:
        raise ValueError(f"run file {test_json} holds no test metric")
    scores = {
        **val,
        **{f"final_{c}": float(last[c]) for c in val_columns},
        **{k: (float(v) if isinstance(v, (int, float)) else v) for k, v in tests.items()},
    }
    for key in scores:  # an hparam named like a score (val_size is not: val_<metric> are scores)
        if key in row:
            row[f"hp.{key}"] = row.pop(key)
    row.update(
        {
            "n_params": _need(run, "n_params", run_json),
            "flops": run.get("flops"),
            "steps": run.get("steps"),
            "train_seconds": run.get("train_seconds"),
            "best_step": best_step,
            **scores,
            "status": run["status"],
            "resumes": len(run.get("resumed_at") or []),
            "_scores": list(scores),
        }
    )
    row.update({key: run.get(key) for key in PROVENANCE})
    return row


def collect(run_json_paths, test_json_paths) -> pd.DataFrame:
    """One row per run (run.json paired in order with test.json), sorted by task, configuration,
    attention and seed. A missing or corrupt file raises an error naming it."""
    run_json_paths, test_json_paths = list(run_json_paths), list(test_json_paths)
    if len(run_json_paths) != len(test_json_paths):
        raise ValueError(
            f"{len(run_json_paths)} run.json files but {len(test_json_paths)} test.json files"
        )
    rows = [run_row(r, t) for r, t in zip(run_json_paths, test_json_paths)]
    if not rows:
        raise ValueError("no runs to summarize")
    scores = list(dict.fromkeys(k for row in rows for k in row.pop("_scores")))
    df = pd.DataFrame(rows)
    result = RESULT_HEAD + scores + RESULT_TAIL
    first = IDENTITY + [c for c in df.columns if c not in IDENTITY + result + PROVENANCE]
    df = df[first + result + PROVENANCE]
    keys = [k for k in SORT_KEYS if k in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def write_summary(df: pd.DataFrame, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def read_summary(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing summary {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"corrupt summary {path}: {err}") from err


def _locate(summary: pd.DataFrame, run) -> int:
    """Row position of `run`: an int, or a run folder (or its tail)."""
    if isinstance(run, int) or (isinstance(run, str) and run.isdigit()):
        if not 0 <= int(run) < len(summary):
            raise KeyError(f"no run number {run}: the summary has {len(summary)} rows")
        return int(run)
    tail = Path(run).parts
    dirs = [Path(d).parts for d in summary["run_dir"]]
    hits = [i for i, parts in enumerate(dirs) if parts[-len(tail) :] == tail]
    if len(hits) != 1:
        raise KeyError(f"{'no' if not hits else len(hits)} runs match {run!r}")
    return hits[0]


def same(a, b) -> bool:
    """Equal, counting two missing values as equal."""
    if pd.isna(a) and pd.isna(b):
        return True
    return a == b


def is_test_score(name: str) -> bool:
    """test_<m> (the selected weights' test metric) or last_test_<m> (the last weights'); not
    test_size, a setting."""
    return name.startswith(("test_", "last_test_")) and name != "test_size"


def score_columns(columns) -> set[str]:
    """The score columns of a summary, derived from its columns: every final_val_<m> and its
    val_<m>, and every test_<m> but test_size and last_test_<m> (val_size, val_per_epoch are
    settings)."""
    final = {c for c in columns if c.startswith("final_val_")}
    tests = {c for c in columns if is_test_score(c)}
    return final | {c[len("final_") :] for c in final} | tests


def column_kind(column: str, scores: set) -> str:
    """metric, provenance or param: what a summary column is (scores: score_columns)."""
    if column in RESULT_HEAD + RESULT_TAIL or column in scores:
        return "metric"
    return "provenance" if column in PROVENANCE else "param"


def diff_runs(summary: pd.DataFrame, run_a, run_b) -> pd.DataFrame:
    """The columns where two runs differ: index = column, columns kind (param, metric or
    provenance), a, b. Runs are named by row number or by run folder (or its tail)."""
    ia, ib = _locate(summary, run_a), _locate(summary, run_b)
    scores = score_columns(summary.columns)
    a, b = summary.iloc[ia], summary.iloc[ib]
    rows = []
    for col in summary.columns:
        if col == "run_dir" or same(a[col], b[col]):
            continue
        rows.append({"column": col, "kind": column_kind(col, scores), "a": a[col], "b": b[col]})
    out = pd.DataFrame(rows, columns=["column", "kind", "a", "b"], dtype=object).set_index("column")
    out.attrs.update(a=a["run_dir"], b=b["run_dir"])
    return out


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.exit("usage: python -m kvt.report.summary SUMMARY.csv RUN_A RUN_B")
    try:
        diff = diff_runs(read_summary(args[0]), args[1], args[2])
    except (KeyError, OSError, ValueError) as err:
        sys.exit(f"error: {err.args[0] if err.args else err}")
    print(f"a = {diff.attrs['a']}\nb = {diff.attrs['b']}")
    print(diff.to_string() if len(diff) else "no differences")


if __name__ == "__main__":
    main()
