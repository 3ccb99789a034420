"""The fixed sinusoidal tables against the PyPI package `positional-encodings` 6.0.3.

Guards docs/attention.md's definition of the kv_pos table P (PositionalEncoding2D on a zero input) and
the synthetic model's 1D encoding (PositionalEncoding1D): same values, same channel order, for
pos_dim values that are multiples of 4, even but not of 4, odd, and 1.
"""

import pytest
import torch
from kvt.positional import sinusoid_1d, sinusoid_2d

torch_encodings = pytest.importorskip("positional_encodings.torch_encodings")

CHANNELS = [10, 20, 50, 7, 1, 3]
LENGTHS = [1, 6, 17, 64]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("p", CHANNELS)
def test_sinusoid_2d_matches_package(n, p):
    expected = torch_encodings.PositionalEncoding2D(p)(torch.zeros(1, n, n, p))[0]
    table = sinusoid_2d(n, p)
    assert table.shape == (n, n, p) and table.dtype == torch.float32
    torch.testing.assert_close(table, expected, rtol=0, atol=0)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("p", CHANNELS + [64, 256, 5])
def test_sinusoid_1d_matches_package(n, p):
    expected = torch_encodings.PositionalEncoding1D(p)(torch.zeros(1, n, p))[0]
    table = sinusoid_1d(n, p)
    assert table.shape == (n, p) and table.dtype == torch.float32
    torch.testing.assert_close(table, expected, rtol=0, atol=0)


def test_2d_table_is_a_prefix_of_larger_tables():
    """kv_pos slices P[:n, :n] from an n_max table: the slice must equal the n x n table."""
    torch.testing.assert_close(sinusoid_2d(40, 10)[:13, :13], sinusoid_2d(13, 10), rtol=0, atol=0)
