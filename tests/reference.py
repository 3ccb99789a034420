"""Literal reference implementations of the attention variants, straight from attention.md.

Guards the registry in `kvt.attention`: the tests compare the package's fused and manual paths
against these formulas, computed with a module's own weights. Nothing here is optimised: kv_pos
builds the batch x heads x n x n x pos_dim tensor of the literal definition
S = map_pos(s * (K K^T)_ij + P_ij), takes P from the PyPI package `positional-encodings` (not from
the package's own table), adds the mask after map_pos and does the softmax by hand. The scale is
recomputed from its name, not read from the module.
"""

import math

import torch

# variant -> (has a query projection, has the positional term); the formulas of attention.md
FORMULAS = {"qkv": (True, False), "kv": (False, False), "kv_pos": (False, True),
            "qkv_pos": (True, True)}

_TABLES: dict[tuple[int, int], torch.Tensor] = {}


def package_table(n_max: int, pos_dim: int) -> torch.Tensor:
    """n_max x n_max x pos_dim: PositionalEncoding2D(pos_dim) of `positional-encodings` on zeros."""
    key = (n_max, pos_dim)
    if key not in _TABLES:
        from positional_encodings.torch_encodings import PositionalEncoding2D

        _TABLES[key] = PositionalEncoding2D(pos_dim)(torch.zeros(1, n_max, n_max, pos_dim))[0].clone()
    return _TABLES[key]


def scale_of(scale: str, d_model: int, heads: int) -> float:
    if scale == "head":
        return 1.0 / math.sqrt(d_model / heads)
    if scale == "model":
        return 1.0 / math.sqrt(d_model)
    raise ValueError(scale)


def _linear(x, lin):
    y = x @ lin.weight.T
    return y if lin.bias is None else y + lin.bias


def _heads(x, heads):
    b, n, d = x.shape
    return x.reshape(b, n, heads, d // heads).permute(0, 2, 1, 3)  # b x h x n x d_h


def reference_scores(module, x, scale: str = "head"):
    """Scores S before the mask, batch x heads x n x n, by the literal formulas."""
    if module.variant not in FORMULAS:
        raise NotImplementedError(f"no reference formula for variant {module.variant!r}")
    has_query, has_pos = FORMULAS[module.variant]
    b, n, d = x.shape
    h = module.heads
    s = scale_of(scale, d, h)
    k = _heads(_linear(x, module.k_proj), h)
    q = _heads(_linear(x, module.q_proj), h) if has_query else k
    dot = s * (q @ k.transpose(-2, -1))  # b x h x n x n
    if not has_pos:
        return dot
    p = module.map_pos.in_features
    table = package_table(module.max_len, p)[:n, :n].to(x.dtype)  # n x n x p
    literal = dot[..., None] + table  # b x h x n x n x p: the score added to every channel
    w, bias = module.map_pos.weight, module.map_pos.bias  # maps x p, maps
    if w.shape[0] == 1:  # one Linear(p -> 1) per layer, shared by the heads
        return literal @ w[0] + bias[0]
    assert w.shape[0] == h, "pos_per_head: one Linear(p -> 1) per head"
    return torch.stack([literal[:, i] @ w[i] + bias[i] for i in range(h)], dim=1)


def reference_forward(module, x, mask=None, scale: str = "head"):
    """(out, attention maps): softmax_row(S + M) by hand, A V, concat heads, W_O."""
    b, n, d = x.shape
    scores = reference_scores(module, x, scale)
    if mask is not None:
        scores = scores + mask.to(scores.dtype)  # after map_pos
    shifted = scores - scores.amax(dim=-1, keepdim=True)
    e = shifted.exp()
    attn = e / e.sum(dim=-1, keepdim=True)
    v = _heads(_linear(x, module.v_proj), module.heads)
    heads = attn @ v  # b x h x n x d_h
    concat = heads.permute(0, 2, 1, 3).reshape(b, n, d)
    return _linear(concat, module.out_proj), attn
