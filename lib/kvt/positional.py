"""Fixed sinusoidal tables: 1D (added to token embeddings) and 2D (the kv_pos score term).

Both reproduce the PyPI package `positional-encodings` (`torch_encodings`) exactly, with sin and
cos interleaved per frequency; tests compare them against the package.
"""

import math

import torch


def _interleaved(pos: torch.Tensor, channels: int) -> torch.Tensor:
    """len(pos) x channels table: [sin(p f_0), cos(p f_0), sin(p f_1), ...], channels even."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, channels, 2).float() / channels))
    angles = pos[:, None] * inv_freq[None, :]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


def sinusoid_1d(n: int, channels: int) -> torch.Tensor:
    """n x channels table, equal to `PositionalEncoding1D(channels)` on a zero input."""
    even = 2 * math.ceil(channels / 2)
    return _interleaved(torch.arange(n).float(), even)[:, :channels]


def row_channels(channels: int) -> int:
    """How many leading channels of the 2D table depend on the row i only; the rest depend on the
    column j only."""
    return min(2 * math.ceil(channels / 4), channels)


def sinusoid_2d(n: int, channels: int) -> torch.Tensor:
    """n x n x channels table P, equal to `PositionalEncoding2D(channels)` on a zero input.

    The first row_channels(channels) channels depend on the row i only, the others on the column
    j only.
    """
    half = 2 * math.ceil(channels / 4)
    emb = _interleaved(torch.arange(n).float(), half)  # n x half
    rows = emb[:, None, :].expand(n, n, half)
    cols = emb[None, :, :].expand(n, n, half)
    return torch.cat((rows, cols), dim=-1)[:, :, :channels].contiguous()
