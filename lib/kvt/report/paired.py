"""Paired comparisons of the variants: is kv as good as qkv, and does the positional term help?

Runs of two variants at the same configuration and seed share their data (the same training
sequences, images, batches; the seed fixes them), so their difference is the variant's effect plus
the noise of one training run. Per family, task and metric, each comparison (kv - qkv, kv_pos -
qkv, kv_pos - kv, any other variant - qkv) pairs the runs by (configuration, seed) and reports:
- the mean difference and a percentile bootstrap 95% interval of it (resampling pairs, seeded);
- the Wilcoxon signed-rank p-value (two-sided; zero differences split between the signs) and the
  sign test's (exact binomial on the non-zero differences);
- how many pairs favour each side, with the metric's direction (accuracy and BLEU up, loss down).
With few pairs the tests have little power: n is printed beside every p-value.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..families import FAMILIES
from . import paper
from .tables import markdown, order_tasks

CONFIDENCE = 0.95
N_BOOT = 10_000
ALPHA = 0.05  # a verdict needs the interval to exclude 0 AND a Wilcoxon p below this


def comparisons(variants) -> list[tuple[str, str]]:
    """(variant, baseline) pairs present in `variants`: every variant against qkv, and kv_pos
    against kv (does the positional term help?)."""
    variants = paper.order_variants(variants)
    out = [(v, "qkv") for v in variants if v != "qkv" and "qkv" in variants]
    if "kv_pos" in variants and "kv" in variants:
        out.append(("kv_pos", "kv"))
    return out


def bootstrap_ci(diffs: np.ndarray, seed: int = 0, n_boot: int = N_BOOT,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the mean of `diffs`, resampling them with replacement."""
    rng = np.random.default_rng(seed)
    means = rng.choice(diffs, size=(n_boot, len(diffs)), replace=True).mean(1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def wilcoxon_p(diffs: np.ndarray) -> float:
    if not np.any(diffs):
        return 1.0
    return float(stats.wilcoxon(diffs, zero_method="zsplit", alternative="two-sided").pvalue)


def sign_p(diffs: np.ndarray) -> float:
    pos, neg = int((diffs > 0).sum()), int((diffs < 0).sum())
    return 1.0 if pos + neg == 0 else float(stats.binomtest(pos, pos + neg, 0.5).pvalue)


def paired_rows(runs: pd.DataFrame, metric: str, seed: int = 0) -> list[dict]:
    """One row per comparison of the runs of one task (a family's) on `metric`."""
    rows = []
    wide = runs.pivot_table(index=["cfg", "seed"], columns="attention", values=metric, aggfunc="first")
    for variant, baseline in comparisons(wide.columns):
        both = wide[[variant, baseline]].dropna()
        diffs = (both[variant] - both[baseline]).to_numpy(float)
        if len(diffs) == 0:
            continue
        lo, hi = bootstrap_ci(diffs, seed)
        rows.append({"variant": variant, "baseline": baseline, "n_pairs": len(diffs),
                     "n_configs": both.index.get_level_values("cfg").nunique(),
                     "mean_diff": float(diffs.mean()), "ci_low": lo, "ci_high": hi,
                     "wins": int((diffs > 0).sum()), "losses": int((diffs < 0).sum()),
                     "ties": int((diffs == 0).sum()), "wilcoxon_p": wilcoxon_p(diffs),
                     "sign_p": sign_p(diffs)})
    return rows


def paired_table(summary: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Every family, task, metric and comparison in the summary (see the module docstring)."""
    out = []
    families = [f for f in FAMILIES if f in set(summary["family"])]
    for name in families:
        fam = FAMILIES[name]
        runs = summary[summary["family"] == name]
        for task in order_tasks(runs["task"], fam):
            part = runs[runs["task"] == task]
            for metric, label in fam.table.metrics(task):
                if metric not in part or part[metric].isna().all():
                    continue
                higher = metric not in fam.table.lower_better
                for row in paired_rows(part, metric, seed):
                    better = row["mean_diff"] > 0 if higher else row["mean_diff"] < 0
                    out.append({"family": name, "task": task, "metric": metric, **row,
                                "higher_is_better": higher,
                                "excludes_zero": row["ci_low"] > 0 or row["ci_high"] < 0,
                                "verdict": _verdict(row, better)})
    columns = ["family", "task", "metric", "variant", "baseline", "n_pairs", "n_configs",
               "mean_diff", "ci_low", "ci_high", "wins", "losses", "ties", "wilcoxon_p", "sign_p",
               "higher_is_better", "excludes_zero", "verdict"]
    return pd.DataFrame(out, columns=columns)


def _verdict(row: dict, better: bool) -> str:
    """A bootstrap interval of very few pairs is too narrow to trust; the test's p-value cannot
    fall below ALPHA with fewer than 6 pairs, so both must agree."""
    if not (row["ci_low"] > 0 or row["ci_high"] < 0) or row["wilcoxon_p"] >= ALPHA:
        return "no clear difference"
    return f"{row['variant']} {'better' if better else 'worse'}"


def _num(x, digits=4) -> str:
    return "" if pd.isna(x) else np.format_float_positional(round(float(x), digits), trim="-")


def _p(x) -> str:
    return "" if pd.isna(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def paired_markdown(table: pd.DataFrame) -> str:
    header = ["family", "task", "metric", "comparison", "n", "mean diff", "95% CI", "wins/losses/ties",
              "Wilcoxon p", "sign p", "verdict"]
    rows = [[r.family, r.task, r.metric.removeprefix("test_"), f"{r.variant} - {r.baseline}",
             str(r.n_pairs), _num(r.mean_diff), f"[{_num(r.ci_low)}, {_num(r.ci_high)}]",
             f"{r.wins}/{r.losses}/{r.ties}", _p(r.wilcoxon_p), _p(r.sign_p), r.verdict]
            for r in table.itertuples()]
    return (markdown(header, rows, "l" * 4 + "r" * 6 + "l") +
            f"\nPaired over (configuration, seed): runs of two variants with the same configuration "
            f"and seed share their data. mean diff = variant - baseline (accuracy and BLEU: up is "
            f"better; loss and bits per character: down is better); 95% CI: percentile bootstrap "
            f"of the mean difference ({N_BOOT:,} resamples, seeded); Wilcoxon signed-rank (zeros "
            f"split) and sign test, two-sided; n = pairs. A verdict needs a CI that excludes 0 and a "
            f"Wilcoxon p below {ALPHA} (impossible with fewer than 6 pairs).\n")


def paired_figure(table: pd.DataFrame):
    """Every variant's difference to qkv with its 95% interval, one row per task, one panel per
    family and metric (their scales differ); a dashed line at no difference."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .figures import variant_colors

    vs_qkv = table[table["baseline"] == "qkv"]
    groups = list(dict.fromkeys(zip(vs_qkv["family"], vs_qkv["metric"])))
    if not groups:
        raise ValueError("no comparison with qkv in the table: run qkv and another variant")
    variants = paper.order_variants(vs_qkv["variant"])
    colors = variant_colors(variants)
    heights = [max(1, vs_qkv[(vs_qkv["family"] == f) & (vs_qkv["metric"] == m)]["task"].nunique())
               for f, m in groups]
    fig = Figure(figsize=(7.5, 0.45 * sum(heights) + 1.0 * len(groups) + 0.8), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False, height_ratios=heights)[:, 0]
    offset = {v: (i - (len(variants) - 1) / 2) * 0.25 for i, v in enumerate(variants)}
    for ax, (family, metric) in zip(axes, groups):
        part = vs_qkv[(vs_qkv["family"] == family) & (vs_qkv["metric"] == metric)]
        tasks = list(dict.fromkeys(part["task"]))
        for r in part.itertuples():
            y = tasks.index(r.task) + offset[r.variant]
            ax.errorbar(r.mean_diff, y, xerr=[[r.mean_diff - r.ci_low], [r.ci_high - r.mean_diff]],
                        fmt="o", ms=4, capsize=2, color=colors[r.variant])
        ax.axvline(0, color="0.3", ls="--", lw=0.8)
        ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
        ax.set_ylim(len(tasks) - 0.5, -0.5)
        better = "higher" if part["higher_is_better"].iloc[0] else "lower"
        ax.set_title(f"{family}: {metric.removeprefix('test_')} ({better} is better)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3, lw=0.5)
    axes[-1].set_xlabel("variant - qkv (mean over paired runs, 95% bootstrap interval)", fontsize=9)
    fig.legend(handles=[Line2D([], [], color=colors[v], marker="o", ls="", label=f"{v} - qkv")
                        for v in variants], loc="outside lower center", ncol=len(variants),
               fontsize=9, frameon=False)
    fig.suptitle("Paired differences to qkv, per task (same configuration and seed)", fontsize=11)
    return fig


def write_paired(summary: pd.DataFrame, csv, md, png=None, pdf=None, seed: int = 0) -> pd.DataFrame:
    """tables/paired.{csv,md} and, given paths, the figure of the differences to qkv."""
    table = paired_table(summary, seed)
    for path in (csv, md):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    Path(md).write_text(paired_markdown(table))
    if png or pdf:
        from .figures import save

        save(paired_figure(table), *[p for p in (png, pdf) if p])
    return table
