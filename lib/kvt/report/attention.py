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
    fig.suptitle(f"{task}: first-layer attention, mean over heads (selected weights, seed and "
                 "configuration of the first run)", fontsize=10)
    return fig
