"""What the variants learn (docs/analysis.md), from every run's attention.json (kvt.probe, written
by its eval job): the diagonal mass per layer and variant beside its uniform baseline, and kv_pos's
(and qkv_pos's) positional term decomposed: the temperature per layer, the bias per key position
c(j), and the numeric check that the layer is a plain one with these two. Torch-free.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..families import FAMILIES
from . import paper
from .analysis_files import ATTENTION_ANALYSIS
from .figures import save, variant_colors
from .tables import _seed_std, fmt_mean, fmt_std, markdown, order_tasks, write_csv_md

RUN = ["family", "task", "cfg", "attention", "seed"]
PLACE = ["family", "task", "cfg", "position", "layer"]  # a layer of one configuration
POSITIONAL = ("kv_pos", "qkv_pos")  # the variants with the term, for the notes


def read_probes(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run and self-attention layer, one row per run and layer with the positional
    term) of the attention.json files at `paths`; `position` is the layer's place in the forward
    pass (its x in the figures), `c` the key-position bias as a list (maps x n)."""
    layers, terms = [], []
    for path in paths:
        try:
            probe = json.loads(Path(path).read_text())
            run = {k: probe["run"][k] for k in RUN}
            for i, layer in enumerate(probe["layers"]):
                layers.append({**run, "position": i, "layer": layer["name"], **_layer(layer)})
            for i, term in enumerate(probe["positional"]):
                terms.append({**run, "position": i, "layer": term["name"], **_term(term)})
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not an attention probe's file ({err}); rerun its eval job")
    return pd.DataFrame(layers, columns=RUN + ["position", "layer", *_LAYER]), pd.DataFrame(
        terms, columns=RUN + ["position", "layer", *_TERM]
    )


_LAYER = ("diagonal_mass", "uniform_diagonal", "rows", "heads")
_TERM = ("maps", "n", "alpha", "max_abs_remainder", "max_abs_bias", "max_abs_diff", "rel_diff", "c")


def _layer(entry: dict) -> dict:
    return {k: entry[k] for k in _LAYER}


def _term(entry: dict) -> dict:
    return {k: entry[k] for k in _TERM}


def _natural(name: str):
    """'n8-d16' before 'n16-d16': numbers compared as numbers."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(name))]


def _order(df: pd.DataFrame, by_run: bool = False) -> pd.DataFrame:
    """Rows in the report's order: families (registry), tasks (the family's), configurations
    (numbers compared as numbers), layers in forward order, variants (the paper's), seeds;
    by_run: variants and seeds before the layers (a run's layers together)."""
    if df.empty:
        return df
    names = set(df["family"])
    fams = [f for f in FAMILIES if f in names] + sorted(names - set(FAMILIES))
    tasks = {
        fam: order_tasks(df.loc[df["family"] == fam, "task"], FAMILIES[fam])
        if fam in FAMILIES
        else sorted(set(df.loc[df["family"] == fam, "task"]))
        for fam in fams
    }
    cfgs = sorted(set(df["cfg"]), key=_natural)
    variants = paper.order_variants(df["attention"])
    rank = pd.DataFrame(
        {
            "family": df["family"].map(fams.index),
            "task": [tasks[f].index(t) for f, t in zip(df["family"], df["task"])],
            "cfg": df["cfg"].map(cfgs.index),
            "position": df["position"],
            "attention": df["attention"].map(variants.index),
            "seed": df["seed"] if "seed" in df else 0,
        },
        index=df.index,
    )
    cols = ["family", "task", "cfg"]
    cols += ["attention", "seed", "position"] if by_run else ["position", "attention", "seed"]
    return df.loc[rank.sort_values(cols, kind="stable").index].reset_index(drop=True)


def sections(df: pd.DataFrame, by_run: bool = False):
    """(family, task, its rows) in the report's order (_order)."""
    df = _order(df, by_run)
    for (family, task), part in df.groupby(["family", "task"], sort=False):
        yield family, task, part


# -- diagonal mass --------------------------------------------------------------------------------
def diagonal_table(layers: pd.DataFrame) -> pd.DataFrame:
    """Per family, task, configuration, layer and variant: the diagonal mass's mean and sample std
    (ddof 1) over seeds, the seed count, and the uniform baseline (mean over those runs; it
    depends on the test batches' masks, not on the weights)."""
    if layers.empty:
        return pd.DataFrame(
            columns=PLACE
            + ["attention", "diagonal_mass", "diagonal_mass_std", "n_seeds", "uniform_diagonal"]
        )
    table = (
        layers.groupby(PLACE + ["attention"], sort=False)
        .agg(
            diagonal_mass=("diagonal_mass", "mean"),
            diagonal_mass_std=("diagonal_mass", _seed_std),
            n_seeds=("seed", "nunique"),
            uniform_diagonal=("uniform_diagonal", "mean"),
        )
        .reset_index()
    )
    return _order(table)


def _cell(mean, std) -> str:
    return fmt_mean(mean) + ("" if pd.isna(std) else f" ± {fmt_std(std)}")


def diagonal_markdown(table: pd.DataFrame) -> str:
    """One section per family and task: a row per configuration and layer, a column per variant
    (mean ± std over seeds), the uniform baseline last."""
    out = [
        "# Diagonal mass: the mean attention weight a query gives its own key\n",
        "Per self-attention layer (forward order), on the first test batches of each run's "
        "selected weights (kvt.probe), mean ± sample std over seeds; `uniform`: what attention "
        "spread evenly over the allowed keys would give (1 / allowed keys, averaged over the same "
        "rows). docs/analysis.md says how to read it.\n",
    ]
    if table.empty:
        return "\n".join(out + ["No run has an attention.json.\n"])
    for family, task, part in sections(table):
        variants = paper.order_variants(part["attention"])
        seeds = sorted(set(part["n_seeds"]))
        rows = []
        for (cfg, _, layer), cells in part.groupby(["cfg", "position", "layer"], sort=False):
            by = {r.attention: r for r in cells.itertuples()}
            rows.append(
                [cfg, layer]
                + [
                    _cell(by[v].diagonal_mass, by[v].diagonal_mass_std) if v in by else ""
                    for v in variants
                ]
                + [fmt_mean(cells["uniform_diagonal"].mean())]
            )
        out.append(f"## {family} / {task}\n")
        header = ["configuration", "layer", *variants, "uniform"]
        out.append(markdown(header, rows, align="ll" + "r" * (len(header) - 2)))
        out.append(f"Seeds per cell: {', '.join(map(str, seeds))}.\n")
    return "\n".join(out)


def _layer_axis(part):
    """A panel's layers (position, name; forward order), their x by position, its variants in
    the paper's order and the width that sets them side by side at each layer."""
    places = part[["position", "layer"]].drop_duplicates().sort_values("position")
    x = {p: i for i, p in enumerate(places["position"])}
    shown = paper.order_variants(part["attention"])
    return places, x, shown, 0.5 / max(len(shown), 1)


def _short_names(names: list[str]) -> list[str]:
    """Layer names without the dotted parts they all share ('blocks.0.attn', 'blocks.1.attn' ->
    '0', '1'); one layer keeps its name."""
    parts = [n.split(".") for n in names]
    if len(names) < 2 or len({len(p) for p in parts}) > 1:
        return names
    keep = [i for i in range(len(parts[0])) if len({p[i] for p in parts}) > 1]
    return [".".join(p[i] for i in keep) for p in parts]


def _panel_grid(count: int, width: float, height: float):
    cols = min(count, 3)
    rows = -(-count // cols)
    fig = Figure(figsize=(max(7.0, width * cols + 0.6), height * rows + 1.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def diagonal_figure(layers: pd.DataFrame) -> Figure:
    """A panel per family, task and configuration: x the layer, y the diagonal mass, a line per
    variant (mean over seeds, bars from the lowest to the highest seed), the uniform baseline
    dashed."""
    if layers.empty:
        return _note_figure("No run has an attention.json: no diagonal mass to show.")
    layers = _order(layers)
    panels = list(layers.groupby(["family", "task", "cfg"], sort=False))
    variants = paper.order_variants(layers["attention"])
    colors = variant_colors(variants)
    fig, axes = _panel_grid(len(panels), 4.2, 3.0)
    for ax, ((family, task, cfg), part) in zip(axes, panels):
        places, x, shown, width = _layer_axis(part)
        for k, variant in enumerate(shown):
            runs = part[part["attention"] == variant]
            stats = runs.groupby("position")["diagonal_mass"].agg(["mean", "min", "max"])
            xs = np.array([x[p] for p in stats.index]) + (k - (len(shown) - 1) / 2) * width
            ax.errorbar(
                xs,
                stats["mean"],
                yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                fmt="o-",
                ms=4,
                lw=1.4,
                capsize=2,
                color=colors[variant],
            )
        uniform = part.groupby("position")["uniform_diagonal"].mean()
        at = np.array([x[p] for p in uniform.index])
        ax.hlines(uniform, at - 0.4, at + 0.4, colors="k", linestyles="--", lw=1.2)
        ax.set_xticks(range(len(x)), _short_names(list(places["layer"])), fontsize=8)
        ax.set_xlim(-0.6, len(x) - 0.4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{family} / {task} / {cfg}", fontsize=9)
        ax.set_xlabel("self-attention layer", fontsize=8)
        ax.set_ylabel("diagonal mass", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, lw=0.5)
    handles = [Line2D([], [], color=colors[v], marker="o", lw=1.4, label=v) for v in variants]
    handles.append(Line2D([], [], color="k", ls="--", label="uniform attention"))
    fig.legend(
        handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False
    )
    fig.suptitle(
        "Diagonal mass per layer (selected weights, first test batches)\n"
        "mean over seeds, bars min–max over seeds",
        fontsize=10,
    )
    return fig


def _note_figure(text: str) -> Figure:
    fig = Figure(figsize=(6.5, 2.0))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    return fig


# -- kv_pos decomposed ----------------------------------------------------------------------------
def terms_table(terms: pd.DataFrame) -> pd.DataFrame:
    """Per kv_pos / qkv_pos run and layer: alpha (one per map: per layer, or per head), max |B|,
    max |remainder| of B - a(i) - c(j), and the equivalence check's max abs and relative
    difference."""
    cols = RUN + ["position", "layer", "alpha", "max_abs_bias", "max_abs_remainder"]
    cols += ["max_abs_diff", "rel_diff"]
    if terms.empty:
        return pd.DataFrame(columns=cols)
    table = _order(terms, by_run=True)[cols].copy()
    table["alpha"] = table["alpha"].map(lambda a: " ".join(f"{v:.4g}" for v in a))
    return table


def _sci(x) -> str:
    return f"{float(x):.1e}"


def terms_markdown(table: pd.DataFrame, attentions=()) -> str:
    """One section per family and task: a row per run and layer. attentions: the variants the
    runs had, named where none has the term."""
    out = [
        "# kv_pos decomposed: temperature, key-position bias and the equivalence check\n",
        "Per run with the positional term and layer (forward order; cross-attention included), "
        "from its selected weights (kvt.probe): alpha = sum(w), one per map (per layer, or per head "
        "with pos_per_head); max |B| of the bias B_ij = w . P_ij + b and max |remainder| of "
        "B - a(i) - c(j) at the longest sequence the layer saw; `diff`: max |out - out'| of the "
        "layer's own output and a plain kv (qkv) layer with its weights, temperature alpha and a "
        "bias c(j) per key, on the layer's own inputs of the first test batches; `rel.`: diff / "
        "max |out|. docs/analysis.md says how to read it.\n",
    ]
    if table.empty:
        had = ", ".join(paper.order_variants(attentions)) or "none"
        return "\n".join(
            out
            + [
                f"No run has the positional term ({' or '.join(POSITIONAL)}): the runs' variants "
                f"are {had}.\n"
            ]
        )
    for family, task, part in sections(table, by_run=True):
        rows = [
            [
                r.cfg,
                r.attention,
                str(r.seed),
                r.layer,
                r.alpha,
                fmt_mean(r.max_abs_bias),
                _sci(r.max_abs_remainder),
                _sci(r.max_abs_diff),
                _sci(r.rel_diff),
            ]
            for r in part.itertuples()
        ]
        header = ["configuration", "variant", "seed", "layer", "alpha", "max |B|"]
        header += ["max |remainder|", "diff", "rel."]
        out.append(f"## {family} / {task}\n")
        out.append(markdown(header, rows, align="lllllrrrr"))
    return "\n".join(out)


def terms_figure(terms: pd.DataFrame, attentions=()) -> Figure:
    """Per family, task and configuration two panels: the temperature alpha per layer (a point per
    seed and map), and c(j) per layer of the first seed against the key position j (centred: a
    constant cancels in the softmax; mean over heads with pos_per_head)."""
    if terms.empty:
        had = ", ".join(paper.order_variants(attentions)) or "none"
        return _note_figure(
            f"No run has the positional term ({' or '.join(POSITIONAL)}):\nthe runs' variants "
            f"are {had}."
        )
    terms = _order(terms)
    panels = list(terms.groupby(["family", "task", "cfg"], sort=False))
    variants = paper.order_variants(terms["attention"])
    colors = variant_colors(variants)
    styles = ["-", "--", ":", "-."]
    fig = Figure(figsize=(10.0, 3.0 * len(panels) + 1.0), layout="constrained")
    axes = fig.subplots(len(panels), 2, squeeze=False, width_ratios=[1, 1.6])
    for (left, right), ((family, task, cfg), part) in zip(axes, panels):
        places, x, shown, width = _layer_axis(part)
        for k, variant in enumerate(shown):
            runs = part[part["attention"] == variant]
            dx = (k - (len(shown) - 1) / 2) * width
            xs = [x[p] + dx for p, a in zip(runs["position"], runs["alpha"]) for _ in a]
            ys = [v for a in runs["alpha"] for v in a]
            left.scatter(xs, ys, s=24, color=colors[variant], alpha=0.8, lw=0)
            first = runs[runs["seed"] == runs["seed"].min()]
            for r in first.itertuples():
                c = np.asarray(r.c, dtype=float).mean(0)
                right.plot(
                    np.arange(len(c)),
                    c - c.mean(),
                    styles[x[r.position] % len(styles)],
                    color=colors[variant],
                    lw=1.2,
                    label=f"{variant} {r.layer}",
                )
        left.axhline(1.0, color="0.4", lw=0.8, ls=":")
        left.set_xticks(range(len(x)), _short_names(list(places["layer"])), fontsize=8)
        left.set_xlim(-0.6, len(x) - 0.4)
        left.set_title(f"{family} / {task} / {cfg}: temperature alpha", fontsize=9)
        left.set_xlabel("layer", fontsize=8)
        left.set_ylabel("alpha = sum(w)", fontsize=8)
        right.set_title("key-position bias c(j) − mean, first seed", fontsize=9)
        right.set_xlabel("key position j", fontsize=8)
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_ylabel("c(j)", fontsize=8)
        right.legend(fontsize=7, ncol=2 if len(places) * len(shown) > 6 else 1, frameon=False)
        for ax in (left, right):
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle(
        "kv_pos's positional term = a temperature alpha (dotted: 1, kv's) and a bias c(j) per key "
        "position\n(selected weights)",
        fontsize=10,
    )
    return fig


# -- the job --------------------------------------------------------------------------------------
def write_analysis(paths, outputs: dict, attentions=()) -> None:
    """Every output of the attention_analysis rule (outputs: {name: path}, the names of
    ATTENTION_ANALYSIS) from the runs' attention.json files; the kv_pos outputs say so where no run
    has the positional term (attentions: the configured variants, named there)."""
    missing = sorted(set(ATTENTION_ANALYSIS) - set(outputs))
    if missing:
        raise ValueError(f"write_analysis lacks the output(s) {', '.join(missing)}")
    out = {k: outputs[k] for k in ATTENTION_ANALYSIS}
    layers, terms = read_probes(paths)
    attentions = list(attentions) or list(layers["attention"].unique())
    table = diagonal_table(layers)
    write_csv_md(table, out["diagonal_csv"], out["diagonal_md"], diagonal_markdown(table))
    save(diagonal_figure(layers), out["diagonal_png"], out["diagonal_pdf"])
    table = terms_table(terms)
    write_csv_md(table, out["terms_csv"], out["terms_md"], terms_markdown(table, attentions))
    save(terms_figure(terms, attentions), out["terms_png"], out["terms_pdf"])
