"""Tables of one task family, from its recipe (kvt.families): the main table (the paper's layout,
with the paper's numbers beside ours where it reports any), the metric per configuration, and
parameter counts, each as tidy CSV (for tools) and Markdown (for people); the main table also as
LaTeX in the paper's row format.

Only tasks and variants present in the summary appear, so a partial run (one task, one variant)
still gets its tables. Two stds, each labelled where it is printed: across configurations the
paper's (numpy's default, ddof 0, as the reference's plot notebook computed it); across seeds of one
configuration the sample std (ddof 1; empty for a single seed).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from ..families import FAMILIES, GROUPS
from ..families import family as family_spec
from ..families import group as group_spec
from . import paper


def which_family(summary: pd.DataFrame, family: str | None = None):
    """The report group (kvt.families.GROUPS: one family, or several the paper shows together)
    named `family`, or of the family named so, or of the only group in the summary."""
    if family is None:
        names = sorted(
            {family_spec(f).report_group for f in summary["family"]} if "family" in summary else []
        )
        if len(names) != 1:
            raise ValueError(f"name the family: the summary holds {names or 'no family column'}")
        family = names[0]
    return group_spec(family if family in GROUPS else family_spec(family).report_group)


def family_runs(summary: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
    """The rows of one report group (the only one in the summary when not named), checked."""
    fam = which_family(summary, family)
    df = summary[summary["family"].isin(fam.members)] if "family" in summary else summary
    if df.empty:
        raise ValueError(f"the summary holds no {fam.name} runs")
    tasks = sorted(set(df["task"])) if "task" in df else []
    scores = [m for t in tasks for m, _ in fam.table.metrics(t)]
    missing = [
        c for c in dict.fromkeys(["task", "cfg", "attention", "seed", *scores]) if c not in df
    ]
    if missing:
        raise ValueError(f"the summary lacks column(s) {', '.join(missing)}")
    # Grid values are integers, but for float axes (a learning rate); in a summary of several
    # families a column one family lacks is read back as float (NaN in that family's rows).
    grid = [
        c
        for c in fam.grid_tags
        if c in df and df[c].notna().all() and (df[c].astype(float) % 1 == 0).all()
    ]
    return df.astype({c: int for c in grid})


def config_columns(df: pd.DataFrame) -> list[str]:
    """The grid axes of the families in df, in name order (seq_len, d_model, depth, heads)."""
    names = set(df["family"]) if "family" in df else set(FAMILIES)
    cols = [k for name in FAMILIES if name in names for k in FAMILIES[name].grid_tags]
    return [c for c in dict.fromkeys(cols) if c in df]


def _std(values) -> float:
    """Across configurations: the paper's population std (ddof 0)."""
    return float(np.std(np.asarray(values, dtype=float)))


def _seed_std(values) -> float:
    """Across seeds: the sample std (ddof 1), NaN for one seed."""
    values = np.asarray(values, dtype=float)
    return float(np.std(values, ddof=1)) if len(values) > 1 else np.nan


def cfg_order(df: pd.DataFrame) -> list[str]:
    """Configurations by their grid values (seq_len, d_model, ...), not by name ("n128" < "n64")."""
    keys = config_columns(df) + ["cfg"]
    return list(df.sort_values(keys)["cfg"].drop_duplicates())


def order_tasks(names, fam) -> list[str]:
    """Tasks in the family's (the paper's) order; others after, sorted."""
    names = set(names)
    return [t for t in fam.tasks if t in names] + sorted(names - set(fam.tasks))


def by_config_table(summary: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
    """Per task, metric (the recipe's, per task), configuration and variant: mean and std
    (sample std, ddof 1) of the metric over seeds."""
    df = family_runs(summary, family)
    fam = which_family(df, family)
    keys = ["task", "cfg"] + config_columns(df) + ["attention"]
    parts = []
    for task, runs in df.groupby("task", sort=False):
        for rank, (metric, _) in enumerate(fam.table.metrics(task)):
            part = (
                runs.groupby(keys, sort=False, dropna=False)[metric]
                .agg(mean="mean", std=_seed_std, n_seeds="count")
                .reset_index()
            )
            part.insert(1, "metric", metric)
            parts.append(part.assign(_m=rank))
    out = pd.concat(parts, ignore_index=True)
    out["_t"] = out["task"].map({t: i for i, t in enumerate(order_tasks(out["task"], fam))})
    out["_c"] = out["cfg"].map({c: i for i, c in enumerate(cfg_order(df))})
    out["_a"] = out["attention"].map(
        {a: i for i, a in enumerate(paper.order_variants(out["attention"]))}
    )
    order = ["_t", "_m", "_c", "_a"]
    return out.sort_values(order).drop(columns=order).reset_index(drop=True)


def paper_table(summary: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
    """The paper's table, tidy: per task (and metric, where the recipe scores a task twice) and
    variant, the metric averaged over seeds within each configuration, then mean and std (numpy,
    ddof=0) ACROSS configurations, with the paper's (mean, std) beside it where the recipe has
    one. A last row, task "mean" (unless the recipe's tasks have different metrics), holds the
    mean over tasks of the task means (std empty; n_configs and n_runs summed over tasks), beside
    the paper's mean over the same tasks (synthetic: its "mean of the 5" row when all five ran)."""
    fam = which_family(summary, family)
    recipe = fam.table
    per_cfg = by_config_table(summary, fam.name)
    rows = []
    for task in order_tasks(per_cfg["task"], fam):
        for metric in per_cfg.loc[per_cfg["task"] == task, "metric"].drop_duplicates():
            for att in paper.order_variants(per_cfg["attention"]):
                cell = per_cfg[
                    (per_cfg["task"] == task)
                    & (per_cfg["metric"] == metric)
                    & (per_cfg["attention"] == att)
                ]
                if cell.empty:
                    continue
                ref = recipe.reference_of(task, att, metric)
                rows.append(
                    {
                        "task": task,
                        "metric": metric,
                        "attention": att,
                        "mean": float(cell["mean"].mean()),
                        "std": _std(cell["mean"]),
                        "n_configs": len(cell),
                        "n_runs": int(cell["n_seeds"].sum()),
                        "paper_mean": ref[0] if ref else np.nan,
                        "paper_std": ref[1] if ref and ref[1] is not None else np.nan,
                    }
                )
    table = pd.DataFrame(rows)
    if not recipe.mean_row:
        return table
    means = []
    for att in paper.order_variants(table["attention"]):
        part = table[table["attention"] == att]
        ref = recipe.reference_mean_of(att, list(part["task"]))
        means.append(
            {
                "task": "mean",
                "metric": recipe.metric,
                "attention": att,
                "mean": float(part["mean"].mean()),
                "std": np.nan,
                "n_configs": int(part["n_configs"].sum()),
                "n_runs": int(part["n_runs"].sum()),
                "paper_mean": np.nan if ref is None else ref,
                "paper_std": np.nan,
            }
        )
    return pd.concat([table, pd.DataFrame(means)], ignore_index=True)


def params_table(summary: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
    """Parameter count per model (rows: task where tasks differ in their models, configuration)
    and variant (columns). The count depends on the architecture only; runs of one model that
    disagree raise (it would mean a code change)."""
    df = family_runs(summary, family)
    fam = which_family(df, family)
    model_keys = [c for c in fam.table.model_keys if c in df]
    keys = model_keys + ["cfg"] + [c for c in config_columns(df) if c not in fam.table.name_only]
    counts = df.groupby(keys + ["attention"], sort=False, dropna=False)["n_params"].unique()
    odd = counts[counts.map(len) > 1]
    if len(odd):
        (*model, att), values = odd.index[0], odd.iloc[0]
        raise ValueError(
            f"runs of {' '.join(map(str, model))} / {att} report different parameter counts {sorted(values)}: "
            "were they trained with different code?"
        )
    wide = counts.map(lambda v: int(v[0])).unstack("attention")
    wide = wide[paper.order_variants(wide.columns)].reset_index()
    wide["_c"] = wide["cfg"].map({c: i for i, c in enumerate(cfg_order(df))})
    wide["_t"] = (
        wide["task"].map({t: i for i, t in enumerate(order_tasks(wide["task"], fam))})
        if "task" in wide
        else 0
    )
    wide = wide.sort_values(["_t", "_c"]).drop(columns=["_t", "_c"]).reset_index(drop=True)
    wide.columns.name = None
    return wide.astype(
        {v: "Int64" for v in paper.order_variants(counts.index.get_level_values(-1))}
    )


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
    return (
        s.replace("\\", "\\textbackslash{}")
        .replace("_", "\\_")
        .replace("&", "\\&")
        .replace("%", "\\%")
    )


def row_name(task: str, metric: str, fam) -> str:
    """A table row's name: the task, with its metric where the recipe scores the task twice or
    differently from the family's main metric ("shakespeare (loss)")."""
    if task == "mean" or fam.table.metrics(task) == ((fam.table.metric, fam.table.label),):
        return task
    return f"{task} ({metric.removeprefix('test_')})"


def _metric_labels(table: pd.DataFrame, fam) -> str:
    """What the numbers are: the recipe's label, or one per metric of the tasks in the table."""
    pairs = {m: label for t in table["task"] if t != "mean" for m, label in fam.table.metrics(t)}
    if len(pairs) <= 1:
        label = next(iter(pairs.values()), fam.table.label)
        return label[0].upper() + label[1:]
    return "; ".join(f"{m.removeprefix('test_')}: {label}" for m, label in pairs.items())


def _paper_cells(table: pd.DataFrame, fam):
    variants = paper.order_variants(table["attention"])
    names = {(r.task, r.metric): row_name(r.task, r.metric, fam) for r in table.itertuples()}
    tasks = list(dict.fromkeys(names.values()))  # already in order, "mean" last
    cell = {(names[r.task, r.metric], r.attention): r for r in table.itertuples()}
    ours = {
        t: [fmt_cell(cell[t, v].mean, cell[t, v].std) if (t, v) in cell else "" for v in variants]
        for t in tasks
    }
    ref = {
        t: [
            fmt_cell(cell[t, v].paper_mean, cell[t, v].paper_std) if (t, v) in cell else ""
            for v in variants
        ]
        for t in tasks
    }
    return variants, tasks, ours, ref


def paper_markdown(table: pd.DataFrame, fam) -> str:
    variants, tasks, ours, ref = _paper_cells(table, fam)
    recipe = fam.table
    has_ref = table["paper_mean"].notna().any()
    header = [recipe.task_label] + (
        [h for v in variants for h in (v, f"{v} paper")] if has_ref else variants
    )
    rows = [
        [t] + ([c for pair in zip(ours[t], ref[t]) for c in pair] if has_ref else ours[t])
        for t in tasks
    ]
    counts = []
    first = table[table["task"] != "mean"].drop_duplicates(["task", "attention"])  # one metric
    for t, part in first.groupby("task", sort=False):
        sizes = {(r.n_configs, r.n_runs) for r in part.itertuples()}
        if len(sizes) == 1:
            ((c, r),) = sizes
            counts.append(f"{t}: {c} configurations, {r} runs per variant")
        else:
            counts.append(
                f"{t}: "
                + ", ".join(
                    f"{r.attention} {r.n_configs} configurations/{r.n_runs} runs"
                    for r in part.itertuples()
                )
            )
    label = _metric_labels(table, fam)
    mean = (
        ""
        if not recipe.mean_row
        else "; `mean` = the mean of the task rows above, ours from our cells and the paper's from "
        "its cells (over the same tasks; over all five it is the paper's printed mean row)"
        if has_ref
        else "; `mean` = the mean of the task rows above"
    )
    note = f" {recipe.reference_note}" if has_ref and recipe.reference_note else ""
    return (
        markdown(header, rows) + f"\n{label}: mean over seeds per configuration, then mean "
        f"(std, numpy ddof=0) across configurations{mean}. Ours: {'; '.join(counts)}.{note}\n"
    )


def paper_latex(table: pd.DataFrame, fam) -> str:
    """A tabular: our block, then the paper's (where it reports numbers), each cell `mean (std)`."""
    variants, tasks, ours, ref = _paper_cells(table, fam)
    has_ref = table["paper_mean"].notna().any()
    k = len(variants)
    blocks = 2 if has_ref else 1
    head = (
        f" & \\multicolumn{{{k}}}{{c|}}{{ours}} & \\multicolumn{{{k}}}{{c}}{{paper}} \\\\"
        if has_ref
        else f" & \\multicolumn{{{k}}}{{c}}{{ours}} \\\\"
    )
    label = _metric_labels(table, fam)
    lines = [
        f"% {label}: mean over seeds per configuration, then mean (std, ddof=0)",
        "% across configurations. Written by kvt.report.tables.",
        "\\begin{tabular}{l" + ("|" + "c" * k) * blocks + "}",
        "\\hline",
        head,
        "task & " + " & ".join(_tex(v) for v in variants * blocks) + " \\\\",
        "\\hline",
    ]
    for t in tasks:
        if t == "mean":
            lines.append("\\hline")
        lines.append(" & ".join([_tex(t)] + ours[t] + (ref[t] if has_ref else [])) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def by_config_markdown(table: pd.DataFrame, fam) -> str:
    """One row per task and configuration, one `mean ± std` column per variant."""
    variants = paper.order_variants(table["attention"])
    keys = ["task", "metric", "cfg"] + [c for c in fam.grid_tags if c in table]
    rows = []
    for key, group in table.groupby(keys, sort=False):
        cells = {
            r.attention: (fmt_cell(r.mean, r.std, " ± {}"), r.n_seeds) for r in group.itertuples()
        }
        seeds = {n for _, n in cells.values()}
        n = (
            str(seeds.pop())
            if len(seeds) == 1
            else "/".join(str(cells[v][1]) if v in cells else "-" for v in variants)
        )
        name = row_name(key[0], key[1], fam)
        rows.append(
            [name]
            + [str(k) for k in key[2:]]
            + [cells[v][0] if v in cells else "" for v in variants]
            + [n]
        )
    header = [fam.table.task_label] + keys[2:] + variants + ["n_seeds"]
    label = _metric_labels(table, fam)
    return (
        markdown(header, rows) + f"\n{label}, mean ± sample std (ddof 1) over "
        "seeds (none for one seed); n_seeds per variant when they differ.\n"
    )


def params_markdown(table: pd.DataFrame, fam) -> str:
    variants = [
        c
        for c in table.columns
        if c in set(paper.order_variants(table.columns))
        and c not in ("cfg", "task", *fam.grid_tags)
    ]
    rows = [
        [str(r[c]) for c in table.columns if c not in variants]
        + ["" if pd.isna(r[v]) else f"{int(r[v]):,}" for v in variants]
        for _, r in table.iterrows()
    ]
    shared = "" if fam.table.model_keys else " (all tasks share them)"
    return markdown(list(table.columns), rows) + f"\nParameters per model{shared}.\n"


# -- writing ---------------------------------------------------------------------------------
def _write(text: str, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def _csv(df: pd.DataFrame, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def write_csv_md(table: pd.DataFrame, csv, md, text: str) -> pd.DataFrame:
    """A table as CSV and its markdown `text`, folders made; returns the table."""
    _csv(table, csv)
    _write(text, md)
    return table


def write_paper_table(
    summary: pd.DataFrame, csv, md, tex, family: str | None = None
) -> pd.DataFrame:
    fam = which_family(summary, family)
    table = paper_table(summary, fam.name)
    _csv(table, csv)
    _write(paper_markdown(table, fam), md)
    _write(paper_latex(table, fam), tex)
    return table


def write_by_config(summary: pd.DataFrame, csv, md, family: str | None = None) -> pd.DataFrame:
    fam = which_family(summary, family)
    table = by_config_table(summary, fam.name)
    _csv(table, csv)
    _write(by_config_markdown(table, fam), md)
    return table


def write_params(summary: pd.DataFrame, csv, md, family: str | None = None) -> pd.DataFrame:
    fam = which_family(summary, family)
    table = params_table(summary, fam.name)
    _csv(table, csv)
    _write(params_markdown(table, fam), md)
    return table


def write_tables(
    summary: pd.DataFrame,
    family: str,
    csv,
    md,
    tex,
    by_config_csv,
    by_config_md,
    params_csv,
    params_md,
) -> None:
    """All three tables of a family (what the tables rule writes)."""
    write_paper_table(summary, csv, md, tex, family)
    write_by_config(summary, by_config_csv, by_config_md, family)
    write_params(summary, params_csv, params_md, family)
