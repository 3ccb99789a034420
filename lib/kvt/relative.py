"""kv_rel's relative-position bias: a learned number per head for each clipped offset between a
query's position and a key's (docs/attention.md, "kv_rel exactly").

Sequences: the offset is i - j, clipped to [-clip, clip]. Images: the offset is the patch
offset (dy, dx), each clipped the same way, and a leading CLS token gets three entries of its
own (CLS to patch, patch to CLS, CLS to itself), as BEiT does. `RelativeBias` holds the table and
an index of the n x n offsets into it, built once from the geometry the model states.
"""

import torch
from torch import nn

# Rows of the table after the patch offsets, for the image CLS token (the query or the key side).
CLS_TO_PATCH, PATCH_TO_CLS, CLS_TO_CLS = 0, 1, 2
CLS_ENTRIES = 3


def sequence_offsets(n: int, clip: int) -> torch.Tensor:
    """n x n: the entry of the table for query i and key j, clamp(i - j, -clip, clip) + clip."""
    pos = torch.arange(n)
    return (pos[:, None] - pos[None, :]).clamp(-clip, clip) + clip


def grid_offsets(rows: int, cols: int, clip: int) -> tuple[torch.Tensor, int]:
    """(index, table size) of a CLS token followed by rows x cols patches in row-major order:
    patch pairs index their clipped (dy, dx) offset; the CLS row, column and corner index the
    three CLS entries after them."""
    ry, rx = min(clip, rows - 1), min(clip, cols - 1)
    y, x = torch.arange(rows).repeat_interleave(cols), torch.arange(cols).repeat(rows)
    dy = (y[:, None] - y[None, :]).clamp(-ry, ry) + ry
    dx = (x[:, None] - x[None, :]).clamp(-rx, rx) + rx
    patches = (2 * ry + 1) * (2 * rx + 1)
    n = rows * cols + 1
    index = torch.empty(n, n, dtype=torch.long)
    index[1:, 1:] = dy * (2 * rx + 1) + dx
    index[0, 1:] = patches + CLS_TO_PATCH
    index[1:, 0] = patches + PATCH_TO_CLS
    index[0, 0] = patches + CLS_TO_CLS
    return index, patches + CLS_ENTRIES


class RelativeBias(nn.Module):
    """The bias b_h(offset) of kv_rel, heads x n x n, from a heads x size table.

    max_len: the longest sequence (1D). grid: (rows, cols) of image patches behind a leading CLS
    token (then the sequence must hold exactly 1 + rows * cols tokens). clip: the largest offset
    with a bias of its own (per axis on a grid); longer ones share the bias of +-clip; None: no
    clipping. Offsets a sequence of max_len (or the grid) cannot reach get no entry. The table
    starts at zero, so kv_rel starts as kv.
    """

    def __init__(
        self, heads: int, *, max_len: int, clip: int | None, grid: tuple[int, int] | None = None
    ):
        super().__init__()
        if clip is not None and clip < 1:
            raise ValueError(f"rel_clip must be at least 1 (or None: no clipping), got {clip}")
        if grid is None:
            self.n_max = max_len
            reach = max_len - 1 if clip is None else min(clip, max_len - 1)
            index, size = sequence_offsets(max_len, reach), 2 * reach + 1
        else:
            rows, cols = grid
            if rows < 1 or cols < 1:
                raise ValueError(f"grid must be (rows, cols) of at least 1 patch, got {grid}")
            self.n_max = rows * cols + 1
            index, size = grid_offsets(rows, cols, max(rows, cols) if clip is None else clip)
        self.grid = None if grid is None else tuple(grid)
        self.table = nn.Parameter(torch.zeros(heads, size))
        self.register_buffer("index", index, persistent=False)

    def forward(self, m: int, n: int | None = None) -> torch.Tensor:
        """heads x m x n: the bias of query i (0..m-1) and key j (0..n-1)."""
        n = m if n is None else n
        if self.grid is not None and (m, n) != (self.n_max, self.n_max):
            raise ValueError(
                f"kv_rel on a {self.grid[0]} x {self.grid[1]} grid expects the CLS token and "
                f"{self.n_max - 1} patches ({self.n_max} tokens), got {m} queries and {n} keys"
            )
        if max(m, n) > self.n_max:
            raise ValueError(f"sequence of {max(m, n)} tokens exceeds kv_rel max_len={self.n_max}")
        return self.table[:, self.index[:m, :n]]
