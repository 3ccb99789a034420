"""tables/cost.{csv,md}: what each variant costs, per family and task. From every run's record:
parameters and matmul FLOPs of one forward pass on one example (run.json), and the measured
training step time (train_seconds / steps: optimizer steps only, validation excluded), each also
as a ratio to qkv. Parameters and FLOPs are means over the task's configurations; the step time is
the median over its runs, on whatever device ran them (the device column)."""

import pandas as pd

from ..families import GROUPS
from . import paper
from .tables import markdown, order_tasks, write_csv_md

COLUMNS = [
    "family",
    "task",
    "variant",
    "configurations",
    "runs",
    "n_params",
    "flops",
    "step_ms",
    "params_vs_qkv",
    "flops_vs_qkv",
    "step_vs_qkv",
    "device",
]


def cost_table(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    present = set(summary["family"])
    for group in (g for g in GROUPS.values() if present & set(g.members)):
        name = group.name
        runs = summary[summary["family"].isin(group.members)]
        for task in order_tasks(runs["task"], group):
            part = runs[runs["task"] == task]
            per = {}
            for variant in paper.order_variants(part["attention"]):
                v = part[part["attention"] == variant]
                step_ms = (v["train_seconds"] / v["steps"]).median() * 1000
                per[variant] = {
                    "family": name,
                    "task": task,
                    "variant": variant,
                    "configurations": v["cfg"].nunique(),
                    "runs": len(v),
                    "n_params": v["n_params"].mean(),
                    "flops": v["flops"].mean(),
                    "step_ms": step_ms,
                    "device": ", ".join(sorted(set(v["device"].dropna().astype(str)))),
                }
            base = per.get("qkv")
            for row in per.values():
                for col, key in (
                    ("params_vs_qkv", "n_params"),
                    ("flops_vs_qkv", "flops"),
                    ("step_vs_qkv", "step_ms"),
                ):
                    row[col] = row[key] / base[key] if base and base[key] else float("nan")
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _ratio(x) -> str:
    return "" if pd.isna(x) else f"{x:.3f}"


def cost_markdown(table: pd.DataFrame) -> str:
    header = [
        "family",
        "task",
        "variant",
        "params",
        "FLOPs / forward",
        "step (ms)",
        "params / qkv",
        "FLOPs / qkv",
        "step / qkv",
        "runs",
        "device",
    ]
    rows = [
        [
            r.family,
            r.task,
            r.variant,
            f"{r.n_params:,.0f}",
            f"{r.flops:,.0f}",
            f"{r.step_ms:.2f}",
            _ratio(r.params_vs_qkv),
            _ratio(r.flops_vs_qkv),
            _ratio(r.step_vs_qkv),
            str(r.runs),
            r.device,
        ]
        for r in table.itertuples()
    ]
    return (
        markdown(header, rows, "lll" + "r" * 7 + "l")
        + "\nParameters and matmul FLOPs of one forward pass on one example (means over the "
        "task's configurations); step = training step time, train_seconds / steps (validation "
        "excluded), the median over the runs, on the device that ran them.\n"
    )


def write_cost(summary: pd.DataFrame, csv, md) -> pd.DataFrame:
    table = cost_table(summary)
    return write_csv_md(table, csv, md, cost_markdown(table))
