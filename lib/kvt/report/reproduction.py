"""The reference versus the reproduction, like for like: every number of the reference (the
paper's synthetic table, the runs its notebooks print, the tutorial's anomaly accuracy:
paper.REFERENCES) beside ours, and a verdict only where ours were measured the same way.

A row is judged only when our runs used the reference's settings: its configurations (exactly),
the hparams it names (epochs or iterations, direction, data sizes, ...), and the weights it
tested (the last weights' last_test_<m> where the reference tested its last weights). Otherwise
the row names each setting that differs, ours against the reference's, and gives no verdict; so
the smoke and cpu presets judge nothing.

The judgement is Welch's t-test of the difference of means (two-sided, ALPHA), on runs where the
reference gives its runs, and on configuration means where it gives only their mean, std and
number (the paper's synthetic table; its std, numpy's ddof 0, is turned into the sample std).
Outcomes: "consistent" (no significant difference), "ours higher", "ours lower", or "too few
runs" (fewer than 2 on a side). Two sides without spread are consistent where equal (a tie at the
ceiling: copy, sub) and differ otherwise.
"""

import itertools
import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from ..families import family
from ..families.base import grid_name
from . import paper
from .tables import markdown, write_csv_md

ALPHA = 0.05
NO_RUNS = "no runs of ours"
COLUMNS = [
    "family",
    "task",
    "metric",
    "label",
    "attention",
    "configuration",
    "reference_runs",
    "reference_mean",
    "reference_std",
    "reference_n",
    "unit",
    "ours_mean",
    "ours_std",
    "ours_n",
    "difference",
    "welch_t",
    "welch_df",
    "p_value",
    "verdict",
    "not_comparable",
    "differs",
    "caveat",
    "source",
]


# -- our side ------------------------------------------------------------------------------------
def _same(ours, theirs) -> bool:
    if isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        try:
            return math.isclose(float(ours), float(theirs), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return str(ours) == str(theirs)


def _values(series) -> str:
    """The distinct values of a column, as text ("2" or "8, 16")."""
    vals = sorted({_plain(v) for v in series.dropna()}, key=str)
    return ", ".join(map(str, vals)) if vals else "not recorded"


def _plain(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _grid_text(grid: dict) -> str:
    return ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in grid.items())


def _product(grid: dict) -> list[tuple]:
    return list(itertools.product(*grid.values()))


def _axes(runs: pd.DataFrame, grid: dict) -> dict:
    """The values our runs have on each axis of the reference's grid."""
    return {k: sorted({_plain(v) for v in runs[k].dropna()}) if k in runs else ["?"] for k in grid}


def _configs(runs: pd.DataFrame, grid: dict) -> set:
    if runs.empty or any(k not in runs for k in grid):
        return set()
    return set(map(tuple, runs[list(grid)].astype(float).to_numpy()))


def our_runs(summary: pd.DataFrame, ref: paper.Reference) -> tuple[pd.DataFrame, list[str]]:
    """(our runs of the reference's task and variant: those in its configurations where any are,
    else all of them; the settings that differ, as 'name: ours X, reference Y')."""
    runs = summary[
        (summary["family"] == ref.family)
        & (summary["task"] == ref.task)
        & (summary["attention"] == ref.attention)
    ]
    if runs.empty:
        return runs, [NO_RUNS]
    inside = runs
    for axis, allowed in ref.grid.items():
        inside = inside[inside[axis].isin(allowed)] if axis in inside else inside.iloc[:0]
    want = {tuple(map(float, p)) for p in _product(ref.grid)}
    differs = []
    if ref.grid and _configs(inside, ref.grid) != want:
        ours = runs if inside.empty else inside
        differs.append(
            f"configurations: ours {_grid_text(_axes(ours, ref.grid))}, reference "
            f"{_grid_text(ref.grid)}"
        )
    runs = inside if not inside.empty else runs
    for key, theirs in ref.settings.items():
        if key not in runs or not all(_same(v, theirs) for v in runs[key]):
            differs.append(
                f"{key}: ours {_values(runs[key]) if key in runs else 'not recorded'}, "
                f"reference {theirs}"
            )
    if ref.metric not in runs or runs[ref.metric].isna().all():
        weights = (
            "the last weights untested (no last_test_ scores: rerun the eval jobs)"
            if ref.metric.startswith("last_test_")
            else f"no {ref.metric} column"
        )
        differs.append(f"weights: {weights}")
    return runs, differs


def our_sample(runs: pd.DataFrame, ref: paper.Reference) -> np.ndarray:
    """Our values on the reference's unit: one per run, or one per configuration (the mean over
    its seeds) where the reference's n counts configuration means."""
    if ref.metric not in runs:
        return np.array([])
    if ref.unit == "configuration means":
        return runs.groupby("cfg")[ref.metric].mean().dropna().to_numpy(float)
    return runs[ref.metric].dropna().to_numpy(float)


# -- the reference's side and the test -----------------------------------------------------------
def reference_stats(ref: paper.Reference) -> tuple[float, float, int]:
    """(mean, sample std (ddof 1; NaN for one value), n) of the reference."""
    if ref.runs:
        runs = np.asarray(ref.runs, dtype=float)
        return float(runs.mean()), _sd(runs), len(runs)
    n = ref.n or 1
    if ref.std is None or n < 2:
        return float(ref.mean), math.nan, n
    sample = ref.std * math.sqrt(n / (n - 1)) if ref.ddof == 0 else ref.std  # ddof 0 -> 1
    return float(ref.mean), float(sample), n


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def welch(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int) -> dict:
    """Welch's two-sided t-test of mean 1 - mean 2 from summary statistics (sample stds), and its
    outcome for side 1 (ours): consistent, ours higher, ours lower, or too few runs."""
    out = {"welch_t": math.nan, "welch_df": math.nan, "p_value": math.nan}
    if n1 < 2 or n2 < 2:
        return {**out, "verdict": "too few runs"}
    v1, v2 = s1**2 / n1, s2**2 / n2
    if v1 + v2 == 0:  # no spread on either side: equal (a tie at the ceiling) or not
        return {
            **out,
            "p_value": 1.0 if m1 == m2 else 0.0,
            "verdict": "consistent" if m1 == m2 else ("ours higher" if m1 > m2 else "ours lower"),
        }
    t = (m1 - m2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    p = float(2 * stats.t.sf(abs(t), df))
    verdict = "consistent" if p >= ALPHA else ("ours higher" if t > 0 else "ours lower")
    return {"welch_t": t, "welch_df": df, "p_value": p, "verdict": verdict}


def _configuration(ref: paper.Reference) -> str:
    """The configuration's name as our runs have it (d64-l2-h1), or how many configurations."""
    points = _product(ref.grid)
    if ref.grid and len(points) == 1:
        return grid_name(dict(zip(ref.grid, points[0])), family(ref.family).grid_tags)
    return f"{ref.n} configurations" if ref.grid else ""


def compare(summary: pd.DataFrame, ref: paper.Reference) -> dict:
    """One row of the table: the reference, ours, and the verdict or why there is none."""
    ref_mean, ref_sd, ref_n = reference_stats(ref)
    row = {
        "family": family(ref.family).report_group,
        "task": ref.task,
        "metric": ref.metric,
        "label": ref.label,
        "attention": ref.attention,
        "configuration": _configuration(ref),
        "reference_runs": json.dumps(list(ref.runs)) if ref.runs else "",
        "reference_mean": ref_mean,
        "reference_std": ref_sd if ref.runs else (math.nan if ref.std is None else ref.std),
        "reference_n": ref_n,
        "unit": ref.unit,
        "source": ref.source,
        "not_comparable": ref.incomparable,
        "caveat": ref.caveat,
        "differs": "",
        "difference": math.nan,
        "welch_t": math.nan,
        "welch_df": math.nan,
        "p_value": math.nan,
        "verdict": "",
    }
    if ref.task == "mean":
        return {**row, **_mean_row(summary, ref)}
    runs, differs = our_runs(summary, ref)
    ours = our_sample(runs, ref)
    shown = np.std(ours) if ref.ddof == 0 and len(ours) else _sd(ours)  # as the reference prints
    row.update(
        ours_mean=float(ours.mean()) if len(ours) else math.nan,
        ours_std=float(shown) if len(ours) > 1 else math.nan,
        ours_n=len(ours),
    )
    if ref.incomparable or differs:
        return {**row, "differs": "; ".join(differs)}
    return {
        **row,
        "difference": row["ours_mean"] - ref_mean,
        **welch(row["ours_mean"], _sd(ours), len(ours), ref_mean, ref_sd, ref_n),
    }


def _mean_row(summary: pd.DataFrame, ref: paper.Reference) -> dict:
    """Ours beside the paper's mean row: the mean of our five task cells (each the mean of its
    configuration means), where all five ran."""
    cells = []
    for task in paper.TASKS:
        sub = paper.Reference(
            ref.family, task, ref.metric, ref.attention, "", "", unit="configuration means"
        )
        sample = our_sample(our_runs(summary, sub)[0], sub)
        cells.append(sample.mean() if len(sample) else math.nan)
    mean = float(np.mean(cells)) if not np.isnan(cells).any() else math.nan
    return {"ours_mean": mean, "ours_std": math.nan, "ours_n": 5 if not math.isnan(mean) else 0}


def reproduction_table(summary: pd.DataFrame, references=paper.REFERENCES) -> pd.DataFrame:
    return pd.DataFrame([compare(summary, ref) for ref in references], columns=COLUMNS)


# -- markdown -----------------------------------------------------------------------------------
def _f(x, digits=4) -> str:
    return "" if pd.isna(x) else np.format_float_positional(round(float(x), digits), trim="-")


UNITS = {
    "runs": ("run", "runs"),
    "configuration means": ("configuration", "configurations"),
    "tasks": ("task mean", "task means"),
}


def _cell(mean, std, n, unit) -> str:
    if pd.isna(mean):
        return ""
    spread = "" if pd.isna(std) else f" ± {_f(std, 3)}"
    return f"{_f(mean)}{spread} ({int(n)} {UNITS[unit][int(n) != 1]})"


def _reference_cell(r) -> str:
    runs = json.loads(r.reference_runs) if r.reference_runs else []
    listed = ", ".join(map(_run, runs))
    return (f"{listed}; " if runs else "") + _cell(
        r.reference_mean, r.reference_std, r.reference_n, r.unit
    )


def _why(r) -> str:
    if r.not_comparable:
        return f"not comparable: {r.not_comparable}"
    if r.differs == NO_RUNS:
        return f"not judged: {NO_RUNS}"
    if r.differs:
        return f"not judged, settings differ: {r.differs}"
    return r.caveat


def _run(v: float) -> str:
    """A reference run as printed: 4 decimals (losses, BLEU), 2 for seconds."""
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.2f}"


def reproduction_markdown(table: pd.DataFrame) -> str:
    header = [
        "family",
        "task",
        "measure",
        "variant",
        "configuration",
        "reference: runs; mean ± std (n)",
        "ours: mean ± std (n)",
        "ours - ref.",
        "Welch p",
        "verdict",
        "why / caveat",
    ]
    rows = [
        [
            r.family,
            r.task,
            r.label,
            r.attention,
            r.configuration,
            _reference_cell(r),
            _cell(r.ours_mean, r.ours_std, r.ours_n, r.unit),
            _f(r.difference),
            _f(r.p_value, 3),
            r.verdict,
            _why(r),
        ]
        for r in table.itertuples()
    ]
    judged = table["verdict"].ne("").sum()
    sources = "\n".join(f"- {s}" for s in dict.fromkeys(table["source"]))
    return (
        markdown(header, rows, "l" * 5 + "rrrr" + "ll")
        + f"\n{judged} of {len(table)} reference numbers judged. The test: Welch's t-test of "
        f"the difference of means (ours - the reference's), two-sided, alpha {ALPHA}: "
        '"consistent" where p >= alpha, else "ours higher" or "ours lower"; "too few '
        'runs" where a side has fewer than 2. On runs where the reference prints its runs '
        "(char-LM, translation: sample std, ddof 1), on configuration means where it gives "
        "their mean and std only (synthetic: n = its configurations; the std shown is numpy's "
        "ddof 0 as the paper prints it, the test uses the sample std). Two sides without "
        "spread are consistent where equal (a tie at the ceiling). A row is judged only where "
        "our runs used the reference's settings (its configurations exactly, the settings "
        "named, the weights it tested: the last weights' last_test_ scores where the reference "
        "tested its last weights); otherwise it names what differs, ours against the "
        "reference's. Settings are compared on the runs' hparams (summary.csv); the data "
        "files (official or fixtures) are not among them.\n\nSources:\n" + sources + "\n"
    )


def write_reproduction(summary: pd.DataFrame, csv, md) -> pd.DataFrame:
    table = reproduction_table(summary)
    return write_csv_md(table, csv, md, reproduction_markdown(table))
