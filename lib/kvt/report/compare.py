"""Compare two runs, or two result folders: the parameters and metrics that differ.

    python -m kvt.report.compare results/synthetic/sort/n64-d64-l2-h2/kv/seed0 other/.../seed0
    python -m kvt.report.compare results other_results        # folders holding summary.csv

Two runs (folders with run.json and test.json): every column of their summary rows that differs,
marked param, metric or provenance. Two result folders: runs are matched by (family, task, cfg,
attention, seed), a family read as its report group (kvt.families.GROUPS: a task is one family's
within its group; so the runs of a family that was split, e.g. nlp into charlm and translation,
still match); the runs only one side has, and per column the number of matched runs that
differ and, for numbers, the largest absolute difference (a refactor that keeps results shows no
metric here).
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .summary import collect, column_kind, diff_runs, read_summary, same, score_columns

KEYS = ["family", "task", "cfg", "attention", "seed"]


def compare_runs(a: Path, b: Path) -> pd.DataFrame:
    """The columns where two run folders differ (kind, a, b)."""
    both = collect(
        [Path(a) / "run.json", Path(b) / "run.json"], [Path(a) / "test.json", Path(b) / "test.json"]
    )
    return diff_runs(both, 0, 1)


def _by_group(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with each family named by its report group (a name no family has: kept)."""
    from ..families import FAMILIES

    names = {name: fam.report_group for name, fam in FAMILIES.items()}
    return summary.assign(family=summary["family"].map(lambda f: names.get(f, f)))


def compare_results(a: Path, b: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs only one side has: KEYS + side, per-column differences of the matched runs: column,
    kind, runs_differing, max_abs_diff), from the two folders' summary.csv."""
    sa, sb = (_by_group(read_summary(Path(x) / "summary.csv")) for x in (a, b))
    for name, s in (("a", sa), ("b", sb)):
        if s.duplicated(KEYS).any():
            raise ValueError(
                f"summary {name} holds a run twice: {s[s.duplicated(KEYS)][KEYS].iloc[0].tolist()}"
            )
    with warnings.catch_warnings():  # wide summaries: pandas warns about its own merge internals
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        merged = sa.merge(sb, on=KEYS, how="outer", suffixes=("@a", "@b"), indicator=True)
    lonely = merged[merged["_merge"] != "both"][KEYS + ["_merge"]].rename(
        columns={"_merge": "side"}
    )
    lonely["side"] = lonely["side"].map({"left_only": "only a", "right_only": "only b"})
    matched = merged[merged["_merge"] == "both"]
    scores = score_columns(set(sa.columns) | set(sb.columns))
    rows = []
    for column in dict.fromkeys(
        [c for c in list(sa.columns) + list(sb.columns) if c not in KEYS and c not in ("run_dir",)]
    ):
        if column not in sa or column not in sb:
            rows.append(
                {
                    "column": column,
                    "kind": column_kind(column, scores),
                    "runs_differing": len(matched),
                    "max_abs_diff": np.nan,
                    "note": f"only in {'a' if column in sa else 'b'}",
                }
            )
            continue
        x, y = matched[f"{column}@a"], matched[f"{column}@b"]
        differ = [not same(p, q) for p, q in zip(x, y)]
        if not any(differ):
            continue
        numeric = pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y)
        gaps = np.abs(x.to_numpy(float) - y.to_numpy(float)) if numeric else np.array([np.nan])
        # a column differing only where one side is empty (NaN) has no numeric gap
        gap = float(np.nanmax(gaps)) if not np.isnan(gaps).all() else np.nan
        rows.append(
            {
                "column": column,
                "kind": column_kind(column, scores),
                "runs_differing": sum(differ),
                "max_abs_diff": gap,
                "note": "",
            }
        )
    diffs = pd.DataFrame(rows, columns=["column", "kind", "runs_differing", "max_abs_diff", "note"])
    order = {"param": 0, "metric": 1, "provenance": 2}
    diffs = diffs.sort_values("kind", key=lambda k: k.map(order), kind="stable").reset_index(
        drop=True
    )
    return lonely.reset_index(drop=True), diffs


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.exit("usage: python -m kvt.report.compare RUN_A RUN_B | RESULTS_A RESULTS_B")
    a, b = map(Path, args)
    try:
        if (a / "run.json").is_file() and (b / "run.json").is_file():
            diff = compare_runs(a, b)
            print(f"a = {a}\nb = {b}")
            print(diff.to_string() if len(diff) else "no differences")
        elif (a / "summary.csv").is_file() and (b / "summary.csv").is_file():
            lonely, diffs = compare_results(a, b)
            print(f"a = {a}\nb = {b}")
            print(
                f"{len(lonely)} run(s) on one side only"
                + (":\n" + lonely.to_string() if len(lonely) else "")
            )
            print(diffs.to_string() if len(diffs) else "matched runs: no differences")
        else:
            sys.exit(
                f"error: give two run folders (with run.json) or two result folders (with "
                f"summary.csv); got {a} and {b}"
            )
    except (KeyError, OSError, ValueError) as err:
        sys.exit(f"error: {err.args[0] if err.args else err}")


if __name__ == "__main__":
    main()
