"""Tables of the synthetic tasks: the paper's table with its numbers beside ours, accuracy per
configuration, and parameter counts, each as tidy CSV (for tools) and Markdown (for people); the
paper table also as LaTeX in the paper's row format.

Only tasks and variants present in the summary appear, so a partial run (one task, one variant)
still gets its tables. Every std here is numpy's default (ddof=0): the design notes do not say which
the paper used, and numpy's default is the likeliest for a plotting notebook.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from . import paper

CONFIG_COLUMNS = ["seq_len", "d_model", "depth", "heads"]


def _synthetic(summary: pd.DataFrame) -> pd.DataFrame:
    df = summary[summary["family"] == "synthetic"] if "family" in summary else summary
    if df.empty:
        raise ValueError("the summary holds no synthetic runs")
    missing = [c for c in ["task", "cfg", "attention", "seed", "test_acc"] if c not in df]
    if missing:
        raise ValueError(f"the summary lacks column(s) {', '.join(missing)}")
    return df


def _std(values) -> float:
    return float(np.std(np.asarray(values, dtype=float)))  # ddof=0 (see the module docstring)


def cfg_order(df: pd.DataFrame) -> list[str]:
    """Configurations by (seq_len, d_model, depth, heads), not by name ("n128" < "n64" as text)."""
    keys = [c for c in CONFIG_COLUMNS if c in df] + ["cfg"]
    return list(df.sort_values(keys)["cfg"].drop_duplicates())


def by_config_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per task, configuration and variant: mean and std (ddof=0) of test accuracy over seeds."""
    df = _synthetic(summary)
    keys = ["task", "cfg"] + [c for c in CONFIG_COLUMNS if c in df] + ["attention"]
    out = (df.groupby(keys, sort=False, dropna=False)["test_acc"]
           .agg(mean="mean", std=_std, n_seeds="count").reset_index())
    out["_t"] = out["task"].map({t: i for i, t in enumerate(paper.order_tasks(out["task"]))})
    out["_c"] = out["cfg"].map({c: i for i, c in enumerate(cfg_order(df))})
    out["_a"] = out["attention"].map({a: i for i, a in enumerate(paper.order_variants(out["attention"]))})
    return out.sort_values(["_t", "_c", "_a"]).drop(columns=["_t", "_c", "_a"]).reset_index(drop=True)


def paper_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's table, tidy: per task and variant, test accuracy averaged over seeds within each
    configuration, then mean and std (numpy, ddof=0) ACROSS configurations, with the paper's
    (mean, std) beside it. A last row, task "mean", holds the mean over tasks of the task means
    (std empty; n_configs and n_runs summed over tasks), beside the paper's mean over the same
    tasks (its "mean of the 5" row when all five are present)."""
    per_cfg = by_config_table(summary)
    rows = []
    for task in paper.order_tasks(per_cfg["task"]):
        for att in paper.order_variants(per_cfg["attention"]):
            cell = per_cfg[(per_cfg["task"] == task) & (per_cfg["attention"] == att)]
            if cell.empty:
                continue
            ref = paper.synthetic_cell(task, att)
            rows.append({"task": task, "attention": att, "mean": float(cell["mean"].mean()),
                         "std": _std(cell["mean"]), "n_configs": len(cell),
                         "n_runs": int(cell["n_seeds"].sum()),
                         "paper_mean": ref[0] if ref else np.nan, "paper_std": ref[1] if ref else np.nan})
    table = pd.DataFrame(rows)
    means = []
    for att in paper.order_variants(table["attention"]):
        part = table[table["attention"] == att]
        ref = paper.synthetic_mean(att, part["task"])
        means.append({"task": "mean", "attention": att, "mean": float(part["mean"].mean()),
                      "std": np.nan, "n_configs": int(part["n_configs"].sum()),
                      "n_runs": int(part["n_runs"].sum()),
                      "paper_mean": np.nan if ref is None else ref, "paper_std": np.nan})
    return pd.concat([table, pd.DataFrame(means)], ignore_index=True)


def params_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Parameter count per configuration (rows) and variant (columns). The count depends on the
    architecture only; a configuration whose runs disagree raises (it would mean a code change)."""
    df = _synthetic(summary)
    keys = ["cfg"] + [c for c in ["d_model", "depth", "heads"] if c in df]
    counts = df.groupby(keys + ["attention"], sort=False, dropna=False)["n_params"].unique()
    odd = counts[counts.map(len) > 1]
    if len(odd):
        (cfg, *_, att), values = odd.index[0], odd.iloc[0]
        raise ValueError(f"runs of {cfg} / {att} report different parameter counts {sorted(values)}: "
                         "were they trained with different code?")
    wide = counts.map(lambda v: int(v[0])).unstack("attention")
    wide = wide[paper.order_variants(wide.columns)].reset_index()
    wide["_c"] = wide["cfg"].map({c: i for i, c in enumerate(cfg_order(df))})
    wide = wide.sort_values("_c").drop(columns="_c").reset_index(drop=True)
    wide.columns.name = None
    return wide.astype({v: "Int64" for v in paper.order_variants(counts.index.get_level_values(-1))})


# -- formatting ------------------------------------------------------------------------------
def fmt_mean(x) -> str:
    """Like the paper: 4 decimals, trailing zeros trimmed (1.0, 0.9708)."""
    return "" if pd.isna(x) else np.format_float_positional(round(float(x), 4), trim="0")


def fmt_std(x) -> str:
    """Like the paper: 2 significant digits (0.38, 0.033, 0.0)."""
    return "" if pd.isna(x) else np.format_float_positional(float(f"{float(x):.2g}"), trim="0")


def fmt_cell(mean, std, sep=" ({})") -> str:
    """`0.9708 (0.033)`; the mean alone when std is empty; empty when both are."""
    if pd.isna(mean):
        return ""
    return fmt_mean(mean) + ("" if pd.isna(std) else sep.format(fmt_std(std)))


def markdown(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; align: one of l/r/c per column (default l, then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = {"l": ":--", "r": "--:", "c": ":-:"}

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(rule[a] for a in align)] + [line(r) for r in rows]) + "\n"


def _tex(s: str) -> str:
    return s.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("&", "\\&").replace("%", "\\%")


def _paper_cells(table: pd.DataFrame):
    variants = paper.order_variants(table["attention"])
    tasks = list(dict.fromkeys(table["task"]))  # already in order, "mean" last
    cell = {(r.task, r.attention): r for r in table.itertuples()}
    ours = {t: [fmt_cell(cell[t, v].mean, cell[t, v].std) if (t, v) in cell else "" for v in variants]
            for t in tasks}
    ref = {t: [fmt_cell(cell[t, v].paper_mean, cell[t, v].paper_std) if (t, v) in cell else ""
               for v in variants] for t in tasks}
    return variants, tasks, ours, ref


def paper_markdown(table: pd.DataFrame) -> str:
    variants, tasks, ours, ref = _paper_cells(table)
    header = ["task"] + [h for v in variants for h in (v, f"{v} paper")]
    rows = [[t] + [c for pair in zip(ours[t], ref[t]) for c in pair] for t in tasks]
    counts = []
    for t, part in table[table["task"] != "mean"].groupby("task", sort=False):
        sizes = {(r.n_configs, r.n_runs) for r in part.itertuples()}
        if len(sizes) == 1:
            (c, r), = sizes
            counts.append(f"{t}: {c} configurations, {r} runs per variant")
        else:
            counts.append(f"{t}: " + ", ".join(f"{r.attention} {r.n_configs} configurations/{r.n_runs} runs"
                                               for r in part.itertuples()))
    return (markdown(header, rows) + "\nPer-token test accuracy: mean over seeds per configuration, "
            "then mean (std, numpy ddof=0) across configurations; `mean` = mean over tasks (the "
            "paper's over the same tasks: its printed mean of the 5 when all five ran). "
            f"Ours: {'; '.join(counts)}. Paper: 16 configurations (19 for reverse and sort).\n")


def paper_latex(table: pd.DataFrame) -> str:
    """A tabular: our block, then the paper's, each cell `mean (std)` as the paper prints it."""
    variants, tasks, ours, ref = _paper_cells(table)
    k = len(variants)
    lines = ["% Per-token test accuracy: mean over seeds per configuration, then mean (std, ddof=0)",
             "% across configurations. Written by kvt.report.tables.",
             f"\\begin{{tabular}}{{l|{'c' * k}|{'c' * k}}}", "\\hline",
             f" & \\multicolumn{{{k}}}{{c|}}{{ours}} & \\multicolumn{{{k}}}{{c}}{{paper}} \\\\",
             "task & " + " & ".join(_tex(v) for v in variants * 2) + " \\\\", "\\hline"]
    for t in tasks:
        if t == "mean":
            lines.append("\\hline")
        lines.append(" & ".join([_tex(t)] + ours[t] + ref[t]) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def by_config_markdown(table: pd.DataFrame) -> str:
    """One row per task and configuration, one `mean ± std` column per variant."""
    variants = paper.order_variants(table["attention"])
    keys = ["task", "cfg"] + [c for c in CONFIG_COLUMNS if c in table]
    rows = []
    for key, group in table.groupby(keys, sort=False):
        cells = {r.attention: (fmt_cell(r.mean, r.std, " ± {}"), r.n_seeds) for r in group.itertuples()}
        seeds = {n for _, n in cells.values()}
        n = str(seeds.pop()) if len(seeds) == 1 else "/".join(str(cells[v][1]) if v in cells else "-"
                                                               for v in variants)
        rows.append([str(k) for k in key] + [cells[v][0] if v in cells else "" for v in variants] + [n])
    header = keys + variants + ["n_seeds"]
    return (markdown(header, rows) + "\nPer-token test accuracy, mean ± std (numpy ddof=0) over "
            "seeds; n_seeds per variant when they differ.\n")


def params_markdown(table: pd.DataFrame) -> str:
    variants = [c for c in table.columns if c not in ("cfg", "d_model", "depth", "heads")]
    rows = [[str(r[c]) for c in table.columns if c not in variants]
            + ["" if pd.isna(r[v]) else f"{int(r[v]):,}" for v in variants] for _, r in table.iterrows()]
    return markdown(list(table.columns), rows) + "\nParameters per model (all tasks share them).\n"


# -- writing ---------------------------------------------------------------------------------
def _write(text: str, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def _csv(df: pd.DataFrame, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def write_paper_table(summary: pd.DataFrame, csv, md, tex) -> pd.DataFrame:
    table = paper_table(summary)
    _csv(table, csv)
    _write(paper_markdown(table), md)
    _write(paper_latex(table), tex)
    return table


def write_by_config(summary: pd.DataFrame, csv, md) -> pd.DataFrame:
    table = by_config_table(summary)
    _csv(table, csv)
    _write(by_config_markdown(table), md)
    return table


def write_params(summary: pd.DataFrame, csv, md) -> pd.DataFrame:
    table = params_table(summary)
    _csv(table, csv)
    _write(params_markdown(table), md)
    return table


def write_synthetic_tables(summary: pd.DataFrame, csv, md, tex, by_config_csv, by_config_md,
                           params_csv, params_md) -> None:
    """All three synthetic tables (what the table_synthetic rule writes)."""
    write_paper_table(summary, csv, md, tex)
    write_by_config(summary, by_config_csv, by_config_md)
    write_params(summary, params_csv, params_md)
