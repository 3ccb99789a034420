"""Paper versus reproduction: every number the paper gives (its synthetic table; the reference
numbers protocol.md quotes), beside ours computed the same way (mean over seeds per configuration,
then mean and population std across configurations), the difference, and whether ours falls
within the paper's spread (|ours - paper| <= the paper's std across configurations; undefined
where the paper reports one run). Numbers measured otherwise than ours are listed, marked not
comparable, and never judged.
"""

import numpy as np
import pandas as pd

from ..families import FAMILIES
from . import paper
from .tables import markdown, paper_table, write_csv_md


def reproduction_table(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name in [f for f in FAMILIES if f in set(summary["family"])]:
        table = paper_table(summary, name)
        for r in table.itertuples():
            key = (name, r.task, r.metric, r.attention)
            other = paper.OTHER_REFERENCES.get(key)
            if pd.isna(r.paper_mean) and other is None:
                continue
            ref_mean, ref_std, source, comparable = (
                (other[0], other[1], other[2], other[3]) if pd.isna(r.paper_mean) else
                (r.paper_mean, r.paper_std, "the paper" + (" (mean row)" if r.task == "mean" else ""),
                 True))
            why = paper.NOT_COMPARABLE.get((name, r.task, r.metric))
            comparable = comparable and why is None
            std = np.nan if ref_std is None or pd.isna(ref_std) else float(ref_std)
            diff = r.mean - ref_mean
            within = (abs(diff) <= std) if comparable and not np.isnan(std) else None
            rows.append({"family": name, "task": r.task, "metric": r.metric, "attention": r.attention,
                         "paper_mean": ref_mean, "paper_std": std, "ours_mean": r.mean,
                         "ours_std": r.std, "n_configs": r.n_configs, "n_runs": r.n_runs,
                         "difference": diff if comparable else np.nan, "within_paper_spread": within,
                         "comparable": comparable, "source": source if not why else f"{source}: {why}"})
    columns = ["family", "task", "metric", "attention", "paper_mean", "paper_std", "ours_mean",
               "ours_std", "n_configs", "n_runs", "difference", "within_paper_spread", "comparable",
               "source"]
    return pd.DataFrame(rows, columns=columns)


def _f(x, digits=4) -> str:
    return "" if pd.isna(x) else np.format_float_positional(round(float(x), digits), trim="-")


def reproduction_markdown(table: pd.DataFrame) -> str:
    header = ["family", "task", "metric", "variant", "paper", "ours (std, n runs)", "ours - paper",
              "within paper's spread", "source"]
    rows = []
    for r in table.itertuples():
        paper_cell = _f(r.paper_mean) + ("" if pd.isna(r.paper_std) else f" ({_f(r.paper_std, 3)})")
        within = {True: "yes", False: "no"}.get(r.within_paper_spread, "n/a")
        rows.append([r.family, r.task, r.metric.removeprefix("test_"), r.attention, paper_cell,
                     f"{_f(r.ours_mean)} ({_f(r.ours_std, 3)}, {r.n_runs})",
                     _f(r.difference) if r.comparable else "not comparable", within, r.source])
    return (markdown(header, rows, "llll" + "rrr" + "ll") +
            "\nOurs: mean over seeds per configuration, then mean (population std) across "
            "configurations, as the paper computed its table; n runs per variant. Within the "
            "paper's spread: |ours - paper| <= the paper's std across configurations (n/a where "
            "it reports a single run or the numbers are not comparable). The configurations "
            "behind ours follow the preset: only the paper preset reproduces the paper's grid.\n")


def write_reproduction(summary: pd.DataFrame, csv, md) -> pd.DataFrame:
    table = reproduction_table(summary)
    return write_csv_md(table, csv, md, reproduction_markdown(table))
