"""Attention galleries (docs/analysis.md): what every attention layer of each variant computes on
one test example of a task, one row per variant, one column per attention call in call order.
Torch-free: the maps arrive as numpy arrays (kvt.gallery computes them from the models)."""

import textwrap
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
# the width of a panel's colour bar and its tick labels
COLORBAR_INCHES = 0.6
# characters of the 9-point title per inch of figure width (wrapped to fit a one-column figure)
TITLE_CHARS_PER_INCH = 12
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
    colour scale per panel (0 to its largest weight, square root) with its colour bar: a causal
    map's first row is always 1, which would flatten a shared scale; masked entries blank."""
    if not panels:
        raise ValueError(f"{task}: no variant to draw")
    variants = paper.order_variants(panels)
    names = _check_calls(panels, variants)
    colors = variant_colors(variants)
    side = _panel_inches(panels)
    width = (side + COLORBAR_INCHES) * len(names) + 0.6
    fig = Figure(figsize=(width, side * len(variants) + 1.2), layout="constrained")
    axes = fig.subplots(len(variants), len(names), squeeze=False)
    for row, variant in zip(axes, variants):
        panel = panels[variant]
        for i, (ax, m) in enumerate(zip(row, panel.maps)):
            m = np.asarray(m, dtype=float)
            top = float(np.nanmax(m)) if np.isfinite(m).any() else 0.0
            norm = PowerNorm(GAMMA, vmin=0.0, vmax=top if top > 0 else 1.0)
            # a square map keeps square cells; a cross-attention map fills its panel
            aspect = "equal" if m.shape[0] == m.shape[1] else "auto"
            image = ax.imshow(m, cmap=CMAP, norm=norm, aspect=aspect)
            fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02).ax.tick_params(labelsize=6)
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
    title = (
        f"{task}: attention on test example 0 (first configuration and seed), mean over heads; "
        "colour scale per panel, square root; white: masked"
    )
    fig.suptitle(textwrap.fill(title, int(width * TITLE_CHARS_PER_INCH)), fontsize=9)
    return fig
