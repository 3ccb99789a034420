"""Paired comparisons of the variants: is kv as good as qkv, and does the positional term help?

Runs of two variants at the same configuration and seed share their data (the same training
sequences, images, batches; the seed fixes them), so their difference is the variant's effect plus
the noise of one training run. Per family, task and metric, each comparison (kv - qkv, kv_pos -
qkv, kv_pos - kv, any other variant - qkv, and each other query-free variant - kv) pairs the runs
by (configuration, seed) and reports:
- the mean difference and a percentile bootstrap 95% interval of it (resampling pairs, seeded);
- the Hodges-Lehmann estimate (the median of the Walsh averages), the centre the Wilcoxon test
  measures;
- the Wilcoxon signed-rank p-value (two-sided; zero differences split between the signs), also
  Holm-adjusted across the tested comparisons of the family's table, and the sign test's (exact
  binomial on the non-zero differences);
- how many pairs favour each side, with the metric's direction (accuracy and BLEU up, loss down).
A verdict ("kv better") needs the mean, the interval and the Hodges-Lehmann estimate on the same
side of 0 and a Holm-adjusted Wilcoxon p below ALPHA: a mean pulled up by a few large wins while
most pairs lose slightly (bimodal tasks such as reverse and swap) is "mixed", never a verdict. A
metric that is a fixed multiple of one listed before it (bits per character = loss / ln 2) is
reported, not tested again: it would count one test twice in the correction.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..attention_names import attention_names, projections
from ..families import GROUPS
from . import paper
from .tables import markdown, order_tasks

CONFIDENCE = 0.95
N_BOOT = 10_000
ALPHA = 0.05  # family-wise: Holm-adjusted Wilcoxon p below this (and signs that agree)


def comparisons(variants) -> list[tuple[str, str]]:
    """(variant, baseline) pairs present in `variants`: every variant against qkv, and every
    other query-free variant (kv_pos, kv_rel, kv_shared: no query projection) against kv (does
    what it adds to kv help?)."""
    variants = paper.order_variants(variants)
    out = [(v, "qkv") for v in variants if v != "qkv" and "qkv" in variants]
    if "kv" in variants:
        registered = attention_names()
        out += [
            (v, "kv") for v in variants if v in registered and v != "kv" and projections(v) == 3
        ]
    return out


def bootstrap_ci(
    diffs: np.ndarray, seed: int = 0, n_boot: int = N_BOOT, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile interval of the mean of `diffs`, resampling them with replacement."""
    rng = np.random.default_rng(seed)
    means = rng.choice(diffs, size=(n_boot, len(diffs)), replace=True).mean(1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def hodges_lehmann(diffs: np.ndarray) -> float:
    """The median of the Walsh averages (d_i + d_j) / 2, i <= j: the one-sample Hodges-Lehmann
    estimate of the centre of the differences."""
    i, j = np.triu_indices(len(diffs))
    return float(np.median((diffs[i] + diffs[j]) / 2))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment: the k-th smallest of m p-values times (m - k + 1), made
    non-decreasing in that order and capped at 1; NaN entries are left out and stay NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out


def derived_from(part: pd.DataFrame, metric: str, earlier) -> str | None:
    """The metric listed before `metric` of which it is a fixed positive multiple on every run
    (bits per character of the loss), or None: equal ratios to 1e-6 (float32 sums), on three
    runs at least (two values always have some fixed ratio)."""
    for other in earlier:
        both = part[[metric, other]].dropna()
        if len(both) >= 3 and (both[other] != 0).all():
            ratio = (both[metric] / both[other]).to_numpy(float)
            if ratio[0] > 0 and np.allclose(ratio, ratio[0], rtol=1e-6, atol=0):
                return other
    return None


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
    wide = runs.pivot_table(
        index=["cfg", "seed"], columns="attention", values=metric, aggfunc="first"
    )
    for variant, baseline in comparisons(wide.columns):
        both = wide[[variant, baseline]].dropna()
        diffs = (both[variant] - both[baseline]).to_numpy(float)
        if len(diffs) == 0:
            continue
        lo, hi = bootstrap_ci(diffs, seed)
        rows.append(
            {
                "variant": variant,
                "baseline": baseline,
                "n_pairs": len(diffs),
                "n_configs": both.index.get_level_values("cfg").nunique(),
                "mean_diff": float(diffs.mean()),
                "ci_low": lo,
                "ci_high": hi,
                "hodges_lehmann": hodges_lehmann(diffs),
                "wins": int((diffs > 0).sum()),
                "losses": int((diffs < 0).sum()),
                "ties": int((diffs == 0).sum()),
                "wilcoxon_p": wilcoxon_p(diffs),
                "sign_p": sign_p(diffs),
            }
        )
    return rows


def paired_table(summary: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Every family, task, metric and comparison in the summary (see the module docstring)."""
    out = []
    present = set(summary["family"])
    groups = [g for g in GROUPS.values() if present & set(g.members)]
    for fam in groups:
        name = fam.name
        runs = summary[summary["family"].isin(fam.members)]
        rows = []
        for task in order_tasks(runs["task"], fam):
            part = runs[runs["task"] == task]
            tested = []
            for metric, label in fam.table.metrics(task):
                if metric not in part or part[metric].isna().all():
                    continue
                source = derived_from(part, metric, tested)
                tested += [] if source else [metric]
                higher = metric not in fam.table.lower_better
                rows += [
                    {
                        "family": name,
                        "task": task,
                        "metric": metric,
                        **row,
                        "higher_is_better": higher,
                        "derived_from": source,
                    }
                    for row in paired_rows(part, metric, seed)
                ]
        # Counted by Holm: the comparisons tested, less those whose every pair is tied (copy and
        # sub at the ceiling): their p is 1 whatever the data, so they can never be rejected and
        # counting them would only make the others' bar higher (Tarone, 1990).
        adjusted = holm(
            [np.nan if r["derived_from"] or _all_tied(r) else r["wilcoxon_p"] for r in rows]
        )
        for row, p_holm in zip(rows, adjusted):
            row["wilcoxon_p_holm"] = 1.0 if _all_tied(row) and not row["derived_from"] else p_holm
            row["excludes_zero"] = row["ci_low"] > 0 or row["ci_high"] < 0
            row["verdict"] = _verdict(row)
        out += rows
    columns = [
        "family",
        "task",
        "metric",
        "variant",
        "baseline",
        "n_pairs",
        "n_configs",
        "mean_diff",
        "ci_low",
        "ci_high",
        "hodges_lehmann",
        "wins",
        "losses",
        "ties",
        "wilcoxon_p",
        "wilcoxon_p_holm",
        "sign_p",
        "higher_is_better",
        "excludes_zero",
        "derived_from",
        "verdict",
    ]
    return pd.DataFrame(out, columns=columns)


def _all_tied(row: dict) -> bool:
    return row["wins"] + row["losses"] == 0


def _verdict(row: dict) -> str:
    """A direction only where every estimate agrees on it (mean, the whole interval, the
    Hodges-Lehmann estimate) and the Holm-adjusted Wilcoxon p is below ALPHA (impossible with
    fewer than 6 pairs). A significant test whose mean and HL disagree is "mixed": the test
    follows the majority of the pairs, the mean may follow a few large ones."""
    if row["derived_from"]:
        return f"as {row['derived_from'].removeprefix('test_')} (derived, not tested again)"
    if _all_tied(row):
        return "no difference (every pair tied)"
    if not row["wilcoxon_p_holm"] < ALPHA:
        return "no clear difference"
    side = np.sign(row["mean_diff"])
    if side == 0 or np.sign(row["hodges_lehmann"]) != side:
        return "mixed (mean and HL differ in sign)"
    if not np.sign(row["ci_low"]) == np.sign(row["ci_high"]) == side:
        return "no clear difference (CI includes 0)"
    up = side > 0
    return f"{row['variant']} {'better' if up == row['higher_is_better'] else 'worse'}"


def _num(x, digits=4) -> str:
    return "" if pd.isna(x) else np.format_float_positional(round(float(x), digits), trim="-")


def _p(x) -> str:
    return "" if pd.isna(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def paired_markdown(table: pd.DataFrame) -> str:
    header = [
        "family",
        "task",
        "metric",
        "comparison",
        "n",
        "mean diff",
        "95% CI",
        "HL",
        "wins/losses/ties",
        "Wilcoxon p",
        "Holm p",
        "sign p",
        "verdict",
    ]
    rows = [
        [
            r.family,
            r.task,
            r.metric.removeprefix("test_"),
            f"{r.variant} - {r.baseline}",
            str(r.n_pairs),
            _num(r.mean_diff),
            f"[{_num(r.ci_low)}, {_num(r.ci_high)}]",
            _num(r.hodges_lehmann),
            f"{r.wins}/{r.losses}/{r.ties}",
            _p(r.wilcoxon_p),
            _p(r.wilcoxon_p_holm),
            _p(r.sign_p),
            r.verdict,
        ]
        for r in table.itertuples()
    ]
    return (
        markdown(header, rows, "l" * 4 + "r" * 8 + "l")
        + f"\nPaired over (configuration, seed): runs of two variants with the same configuration "
        f"and seed share their data. mean diff = variant - baseline (accuracy and BLEU: up is "
        f"better; loss and bits per character: down is better); 95% CI: percentile bootstrap "
        f"of the mean difference ({N_BOOT:,} resamples, seeded); HL: Hodges-Lehmann estimate "
        f"(median of the Walsh averages); Wilcoxon signed-rank (zeros split) and sign test, "
        f"two-sided; Holm p: the Wilcoxon p Holm-adjusted across the tested comparisons of "
        f"the family (every task and metric; a comparison whose every pair is tied cannot "
        f"be rejected and is not counted); n = pairs. A verdict needs the mean, the CI and "
        f"HL on the same side of 0 and a Holm p below {ALPHA} (impossible with fewer than 6 "
        f'pairs); a significant test whose estimates disagree is "mixed". A metric that is a '
        f"fixed multiple of an earlier one (bits per character of the loss) is reported, not "
        f"tested again.\n"
    )


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
    heights = [
        max(1, vs_qkv[(vs_qkv["family"] == f) & (vs_qkv["metric"] == m)]["task"].nunique())
        for f, m in groups
    ]
    fig = Figure(figsize=(7.5, 0.45 * sum(heights) + 1.0 * len(groups) + 0.8), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False, height_ratios=heights)[:, 0]
    offset = {v: (i - (len(variants) - 1) / 2) * 0.25 for i, v in enumerate(variants)}
    for ax, (family, metric) in zip(axes, groups):
        part = vs_qkv[(vs_qkv["family"] == family) & (vs_qkv["metric"] == metric)]
        tasks = list(dict.fromkeys(part["task"]))
        for r in part.itertuples():
            y = tasks.index(r.task) + offset[r.variant]
            ax.errorbar(
                r.mean_diff,
                y,
                xerr=[[r.mean_diff - r.ci_low], [r.ci_high - r.mean_diff]],
                fmt="o",
                ms=4,
                capsize=2,
                color=colors[r.variant],
            )
        ax.axvline(0, color="0.3", ls="--", lw=0.8)
        ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
        ax.set_ylim(len(tasks) - 0.5, -0.5)
        better = "higher" if part["higher_is_better"].iloc[0] else "lower"
        ax.set_title(f"{family}: {metric.removeprefix('test_')} ({better} is better)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3, lw=0.5)
    axes[-1].set_xlabel("variant - qkv (mean over paired runs, 95% bootstrap interval)", fontsize=9)
    fig.legend(
        handles=[
            Line2D([], [], color=colors[v], marker="o", ls="", label=f"{v} - qkv") for v in variants
        ],
        loc="outside lower center",
        ncol=len(variants),
        fontsize=9,
        frameon=False,
    )
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
