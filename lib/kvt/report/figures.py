"""Figures of one task of any family: loss curves against wall time (the paper's compute claim is
about time, not steps) and the family's test metric per configuration, with the paper's mean
beside it where the family's recipe has one.

Built on matplotlib Figure objects, never pyplot: no global figure state, no display needed, and
PNG/PDF go through the Agg/PDF canvases. Each variant keeps one colour in every figure.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import paper
from .summary import read_metrics
from .tables import by_config_table, cfg_order, which_family

# Okabe-Ito colours (colour-blind safe), one per variant, the same in every figure.
COLORS = {
    "qkv": "#0072B2",
    "kv_pos": "#009E73",
    "kv": "#D55E00",
    "qkv_pos": "#56B4E9",
    "kv_rel": "#CC79A7",
    "kv_shared": "#E69F00",
}
_SPARE = ["#000000", "#F0E442"]
DPI = 120


def variant_colors(variants) -> dict[str, str]:
    """COLORS, plus a stable colour for any other variant (by sorted name)."""
    extra = sorted(set(variants) - set(COLORS))
    return {**COLORS, **{v: _SPARE[i % len(_SPARE)] for i, v in enumerate(extra)}}


def seed_band(curves, points: int = 200):
    """Mean, min and max of several (x, y) curves on a common x grid spanning the range where all
    are defined (each interpolated linearly); NaN points are dropped first. None if they share no
    range."""
    clean = []
    for x, y in curves:
        x, y = np.asarray(x, float), np.asarray(y, float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            order = np.argsort(x[ok], kind="stable")
            clean.append((x[ok][order], y[ok][order]))
    if not clean:
        return None
    start, end = max(x[0] for x, _ in clean), min(x[-1] for x, _ in clean)
    if end < start:
        return None
    grid = np.linspace(start, end, points) if end > start else np.array([start])
    ys = np.stack([np.interp(grid, x, y) for x, y in clean])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def _task_runs(summary: pd.DataFrame, task: str, family: str | None = None) -> pd.DataFrame:
    fam = which_family(summary, family)
    df = summary[summary["task"] == task]
    if "family" in df:
        df = df[df["family"].isin(fam.members)]
    if df.empty:
        raise ValueError(f"the summary holds no {fam.name} runs of task {task!r}")
    return df


def load_metrics(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """metrics.csv of every run in `summary`, keyed by run_dir (errors name the file)."""
    return {d: read_metrics(Path(d) / "metrics.csv") for d in summary["run_dir"]}


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 4) if n > 4 else math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _panels(cfgs: list[str], xlabel: str, ylabel: str):
    """A figure with one titled panel per configuration (shared y), axis labels on the outer
    panels; returns (fig, axes in cfgs order, all axes)."""
    rows, cols = _grid(len(cfgs))
    fig = Figure(figsize=(max(7.0, 3.3 * cols + 0.4), 2.5 * rows + 1.1), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for i, (ax, cfg) in enumerate(zip(axes.flat, cfgs)):
        ax.set_title(cfg, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, lw=0.5)
        if i + cols >= len(cfgs):  # the lowest panel of its column
            ax.set_xlabel(xlabel, fontsize=9)
    for ax in axes.flat[len(cfgs) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=9)
    return fig, list(axes.flat[: len(cfgs)]), axes


def _plot_band(ax, curves, style: str, color: str):
    """Mean over seeds of (x, y) curves with a min-max band; the band, or None if none."""
    band = seed_band(curves)
    if band is not None:
        x, mean, lo, hi = band
        ax.plot(x, mean, style, color=color, lw=1.4)
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
    return band


def _legend(fig, colors: dict, variants, extra=()) -> None:
    handles = (
        [Line2D([], [], color=colors[v], lw=2, label=v) for v in variants]
        + list(extra)
        + [Patch(color="0.2", alpha=0.18, label="min–max over seeds")]
    )
    fig.legend(
        handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False
    )


def loss_figure(
    summary: pd.DataFrame, metrics: dict[str, pd.DataFrame], task: str, family: str | None = None
) -> Figure:
    """One panel per configuration: train (dashed) and val (solid) loss against wall time per
    variant, mean over seeds with a min-max band."""
    runs = _task_runs(summary, task, family)
    cfgs, variants = cfg_order(runs), paper.order_variants(runs["attention"])
    colors = variant_colors(variants)
    fig, panels, axes = _panels(cfgs, "wall time (s)", "cross-entropy loss")
    lows, highs, n_seeds = [], [], set()
    for ax, cfg in zip(panels, cfgs):
        for att in variants:
            dirs = runs[(runs["cfg"] == cfg) & (runs["attention"] == att)]["run_dir"]
            if dirs.empty:
                continue
            n_seeds.add(len(dirs))
            for column, style in (("train_loss", "--"), ("val_loss", "-")):
                band = _plot_band(
                    ax,
                    [(metrics[d]["wall_time"], metrics[d][column]) for d in dirs],
                    style,
                    colors[att],
                )
                if band is not None:
                    lo, hi = band[2], band[3]
                    lows.append(lo[lo > 0].min() if (lo > 0).any() else np.nan)
                    highs.append(hi.max())
    if lows and np.nanmax(highs) / np.nanmin(lows) > 20:
        axes[0, 0].set_yscale("log")
    _legend(
        fig,
        colors,
        variants,
        [
            Line2D([], [], color="0.2", ls="--", label="train"),
            Line2D([], [], color="0.2", ls="-", label="val"),
        ],
    )
    seeds = "/".join(str(n) for n in sorted(n_seeds))
    fig.suptitle(
        f"{task}: loss vs training wall time (mean over {seeds} seed{'' if seeds == '1' else 's'})",
        fontsize=11,
    )
    return fig


def curve_figure(
    summary: pd.DataFrame,
    metrics: dict[str, pd.DataFrame],
    task: str,
    column: str,
    label: str,
    family: str | None = None,
) -> Figure:
    """One panel per configuration: a validation metric (metrics.csv `column`) per epoch, mean over
    seeds with a min-max band, per variant (e.g. BLEU per epoch)."""
    runs = _task_runs(summary, task, family)
    cfgs, variants = cfg_order(runs), paper.order_variants(runs["attention"])
    colors = variant_colors(variants)
    fig, panels, _ = _panels(cfgs, "epoch", label)
    for ax, cfg in zip(panels, cfgs):
        for att in variants:
            dirs = runs[(runs["cfg"] == cfg) & (runs["attention"] == att)]["run_dir"]
            curves = [
                (metrics[d]["epoch"], metrics[d][column]) for d in dirs if column in metrics[d]
            ]
            if curves:
                _plot_band(ax, curves, "-", colors[att])
    _legend(fig, colors, variants)
    fig.suptitle(f"{task}: {label} per epoch (mean over seeds)", fontsize=11)
    return fig


def accuracy_figure(summary: pd.DataFrame, task: str, family: str | None = None) -> Figure:
    """Bars of the task's (main) test metric per configuration and variant (error bars: std over
    seeds, sample std), with the paper's mean across configurations as a dotted line per variant."""
    fam = which_family(summary, family)
    recipe = fam.table
    metric, label = recipe.metrics(task)[0]
    table = by_config_table(_task_runs(summary, task, fam.name), fam.name)
    table = table[table["metric"] == metric]
    cfgs, variants = cfg_order(table), paper.order_variants(table["attention"])
    colors = variant_colors(variants)
    width = 0.8 / len(variants)
    fig = Figure(
        figsize=(max(7.0, 1.2 + 0.15 * len(cfgs) * len(variants) + 0.2 * len(cfgs)), 5.0),
        layout="constrained",
    )
    ax = fig.subplots()
    x = np.arange(len(cfgs))
    handles, lines = [], []
    for i, att in enumerate(variants):
        part = table[table["attention"] == att].set_index("cfg").reindex(cfgs)
        handles.append(
            ax.bar(
                x + (i - (len(variants) - 1) / 2) * width,
                part["mean"],
                width * 0.95,
                yerr=part["std"],
                capsize=2,
                color=colors[att],
                label=att,
                error_kw={"elinewidth": 0.8, "ecolor": "0.25"},
            )
        )
        ref = recipe.reference_of(task, att, metric)
        lines.append(
            Line2D([], [], alpha=0, label=" ")
            if ref is None
            else ax.axhline(ref[0], color=colors[att], ls=":", lw=1.6, label=f"{att} paper")
        )
    ax.set_xticks(
        x,
        cfgs,
        rotation=35 if len(cfgs) > 4 else 0,
        ha="right" if len(cfgs) > 4 else "center",
        fontsize=8,
    )
    ax.set_xlim(-0.6, len(cfgs) - 0.4)
    if recipe.bounded:
        ax.set_ylim(0, 1.05)
        ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel(label)
    ax.set_xlabel(recipe.cfg_label)
    ax.grid(axis="y", alpha=0.3, lw=0.5)
    ax.set_axisbelow(True)
    paper_known = any(recipe.reference_of(task, v, metric) for v in variants)
    if paper_known:  # legend columns fill top-down: each variant's bar above its paper line
        handles = [h for pair in zip(handles, lines) for h in pair]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=len(variants), fontsize=8, frameon=False
    )
    where = "; dotted: the paper's mean" if paper_known else ""
    fig.suptitle(f"{task}: {label} (mean ± sample std over seeds{where})", fontsize=11)
    return fig


def save(fig: Figure, *paths) -> None:
    """Write fig to each path (format from the suffix)."""
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)


def write_figure(
    summary: pd.DataFrame,
    family: str,
    task: str,
    kind: str,
    png,
    pdf,
    metrics: dict[str, pd.DataFrame] | None = None,
    column: str = "",
    label: str = "",
) -> None:
    """One figure of `task`: kind `loss` (reads each run's metrics.csv from its run_dir unless
    `metrics` is given), `curve` (metrics.csv `column` per epoch, axis `label`) or `score` (the
    family's metric per configuration)."""
    runs = _task_runs(summary, task, family)
    if kind in ("loss", "curve"):
        metrics = load_metrics(runs) if metrics is None else metrics
        fig = (
            loss_figure(runs, metrics, task, family)
            if kind == "loss"
            else curve_figure(runs, metrics, task, column, label or column, family)
        )
        save(fig, png, pdf)
    elif kind == "score":
        save(accuracy_figure(runs, task, family), png, pdf)
    else:
        raise ValueError(f"unknown figure kind {kind!r}; known: loss, curve, score")
