"""The first layer's attention of each variant for one test image (vision): the image, the CLS
token's attention row drawn over the patch grid, and the token x token scores before the softmax
(head mean: symmetric for kv, plus a per-key column term for kv_pos)."""

import math

import numpy as np
from matplotlib.figure import Figure

from . import paper


def _image(x) -> np.ndarray:
    img = np.asarray(x, dtype=float)
    img = img.transpose(1, 2, 0) if img.shape[0] in (1, 3) else img
    return img[..., 0] if img.shape[-1] == 1 else img / 255.0


def attention_figure(panels: dict, task: str) -> Figure:
    """panels: {variant: (image C x H x W uint8, label, maps, scores: heads x n x n)} -> one row a
    variant."""
    variants = paper.order_variants(panels)
    fig = Figure(figsize=(9.5, 2.9 * len(variants) + 0.6), layout="constrained")
    axes = fig.subplots(len(variants), 3, squeeze=False)
    for row, variant in zip(axes, variants):
        image, label, maps, scores = panels[variant]
        mean = np.asarray(maps, dtype=float).mean(0)
        side = int(math.isqrt(mean.shape[-1] - 1))
        row[0].imshow(_image(image), cmap="gray")
        row[0].set_title(f"{variant}: test image (label {label})", fontsize=9)
        cls = mean[0, 1:].reshape(side, side)
        im = row[1].imshow(cls, cmap="viridis")
        row[1].set_title("CLS row over the patches", fontsize=9)
        fig.colorbar(im, ax=row[1], shrink=0.8)
        im = row[2].imshow(np.asarray(scores, dtype=float).mean(0), cmap="magma")
        row[2].set_title("scores before softmax (query row, key col.)", fontsize=9)
        fig.colorbar(im, ax=row[2], shrink=0.8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"{task}: first-layer attention, mean over heads (selected weights, seed and "
        "configuration of the first run)",
        fontsize=10,
    )
    return fig


def cross_attention_figure(panels: dict, task: str) -> Figure:
    """panels: {variant: (source pieces, translation pieces, maps heads x T x S)} -> one heat map
    a variant: rows the generated tokens (each row the attention that produced the next token),
    columns the source tokens, mean over heads."""
    variants = paper.order_variants(panels)
    n_src = max(len(p[0]) for p in panels.values())
    n_out = max(len(p[1]) for p in panels.values())
    width, height = 0.28 * n_src + 2.2, 0.28 * n_out + 1.4
    fig = Figure(
        figsize=(max(4.0, width) * len(variants), max(3.5, height) + 0.6), layout="constrained"
    )
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    for ax, variant in zip(axes, variants):
        src, out, maps = panels[variant]
        mean = np.asarray(maps, dtype=float).mean(0)[: len(out), : len(src)]
        im = ax.imshow(mean, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(src)), src, rotation=90, fontsize=7)
        ax.set_yticks(range(len(out)), out, fontsize=7)
        ax.set_title(variant, fontsize=10)
        ax.set_xlabel("source", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.7)
    axes[0].set_ylabel("translation (greedy)", fontsize=8)
    fig.suptitle(
        f"{task}: last decoder layer's cross-attention on test sentence 0, mean over heads "
        "(selected weights of the first configuration and seed)",
        fontsize=10,
    )
    return fig
