"""Attention galleries (docs/analysis.md): what every attention layer of each variant computes on
one test example of a task, one row per variant, one column per attention call in call order.
Torch-free: the maps arrive as numpy arrays (kvt.gallery computes them from the models)."""

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from . import paper
from .figures import variant_colors

# Square-root colour scale: attention weights of long rows are small beside a few large ones
# (a causal map's first row is always 1), and a linear scale shows only those.
GAMMA = 0.5
# masked entries are NaN: drawn in this colour, apart from every weight (viridis has no white)
CMAP = colormaps["viridis"].with_extremes(bad="white")
# above this many positions an axis gets no tick labels (the ViT's 65 tokens)
MAX_LABELLED = 40


@dataclass(frozen=True)
class ExampleMaps:
    """The attention calls of one model on one example: each call's module name, whether it is
    self-attention, and its maps (queries x keys, mean over heads, NaN where masked, padding
    dropped); tokens: a label per position of the example's sequence, or None."""

    names: tuple[str, ...]
    is_self: tuple[bool, ...]
    maps: tuple[np.ndarray, ...]
    tokens: tuple[str, ...] | None = None

    def __post_init__(self):
        if not len(self.names) == len(self.is_self) == len(self.maps):
            raise ValueError(
                f"{len(self.names)} names, {len(self.is_self)} kinds and {len(self.maps)} maps: "
                "one of each per attention call"
            )
        for name, m in zip(self.names, self.maps):
            if np.ndim(m) != 2:
                raise ValueError(f"the map of {name} has shape {np.shape(m)}, not queries x keys")


def _labels(panel: ExampleMaps, i: int, size: int) -> list:
    """Tick labels of one axis of call i: the tokens where the call is self-attention over the
    example's own sequence and the axis is short enough, else none ([])."""
    tokens = panel.tokens
    if tokens is None or not panel.is_self[i] or size != len(tokens) or size > MAX_LABELLED:
        return []
    return list(tokens)


def _check_calls(panels: dict, variants: list) -> tuple[str, ...]:
    """The call names every variant shares (the same architecture), in call order."""
    names = panels[variants[0]].names
    for v in variants[1:]:
        if panels[v].names != names:
            raise ValueError(
                f"variant {v} recorded the attention calls {list(panels[v].names)}, "
                f"{variants[0]} {list(names)}: a gallery compares one architecture"
            )
    return names


def _panel_inches(panels: dict) -> float:
    """Side of one panel: room for a tick label per token where there are labels."""
    labelled = max(
        (len(p.tokens) for p in panels.values() if p.tokens and len(p.tokens) <= MAX_LABELLED),
        default=0,
    )
    return min(4.0, max(2.2, 0.16 * labelled + 1.0))


def gallery_figure(panels: dict, task: str) -> Figure:
    """panels: {variant: ExampleMaps} -> one row a variant (paper order), one column a call. One
    colour scale per row (0 to the row's largest weight, square root), its colour bar at the
    right; masked entries blank."""
    if not panels:
        raise ValueError(f"{task}: no variant to draw")
    variants = paper.order_variants(panels)
    names = _check_calls(panels, variants)
    colors = variant_colors(variants)
    side = _panel_inches(panels)
    # at least the title's width; a row's height: its panel, tick labels and colour bar
    fig = Figure(
        figsize=(max(6.5, side * len(names) + 1.2), side * len(variants) + 1.1),
        layout="constrained",
    )
    axes = fig.subplots(len(variants), len(names), squeeze=False)
    for row, variant in zip(axes, variants):
        panel = panels[variant]
        top = max(float(np.nanmax(m)) if np.isfinite(m).any() else 0.0 for m in panel.maps)
        norm = PowerNorm(GAMMA, vmin=0.0, vmax=top if top > 0 else 1.0)
        for i, (ax, m) in enumerate(zip(row, panel.maps)):
            image = ax.imshow(np.asarray(m, dtype=float), cmap=CMAP, norm=norm, aspect="auto")
            queries, keys = m.shape
            xl, yl = _labels(panel, i, keys), _labels(panel, i, queries)
            ax.set_xticks(range(len(xl)), xl, rotation=90, fontsize=6)
            ax.set_yticks(range(len(yl)), yl, fontsize=6)
            ax.tick_params(length=0)
            if variant == variants[0]:
                ax.set_title(names[i] + ("" if panel.is_self[i] else " (cross)"), fontsize=8)
            if variant == variants[-1]:
                ax.set_xlabel("key", fontsize=7)
        row[0].set_ylabel(f"{variant}\nquery", fontsize=9, color=colors[variant], fontweight="bold")
        fig.colorbar(image, ax=list(row), shrink=0.85, pad=0.01).ax.tick_params(labelsize=6)
    fig.suptitle(
        f"{task}: attention on test example 0, mean over heads\n(selected weights of the first "
        "configuration and seed; colour scale per row, square root; white: masked)",
        fontsize=9,
    )
    return fig
