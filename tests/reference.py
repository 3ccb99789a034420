"""Literal reference implementations of the attention variants, straight from docs/attention.md.

Guards the registry in `kvt.attention`: the tests compare the package's SDPA and manual paths
against these formulas, computed with a module's own weights. Nothing here is optimised: kv_pos
builds the batch x heads x n x n x pos_dim tensor of the literal definition
S = map_pos(s * (K K^T)_ij + P_ij), takes P from the PyPI package `positional-encodings` (not from
the package's own table), adds the mask after map_pos and does the softmax by hand. The scale is
recomputed from its name, not read from the module. Cross-attention (docs/attention.md): keys and
values from the context; the query side of the kv variants per their `cross` mode (qk: W_Q on the
decoder states; kk: W_K on both sides); kv_pos's table sliced to P[:m, :n].

kv_rel: the bias of each (query, key) pair read from its table by loops over the positions (the
clipped offset i - j, or the clipped patch offset (dy, dx) on a grid, CLS entries after the patch
offsets), in cross-attention over target position i and source position j. kv_shared: keys divided by their length, then per row, by
loops, the diagonal set to -inf when the mask leaves that query any other key (self-attention).
"""

import math

import torch

# variant -> (has a query projection, has the positional term); the formulas of docs/attention.md
FORMULAS = {
    "qkv": (True, False),
    "kv": (False, False),
    "kv_pos": (False, True),
    "qkv_pos": (True, True),
    "kv_rel": (False, False),
    "kv_shared": (False, False),
}

_TABLES: dict[tuple[int, int], torch.Tensor] = {}


def package_table(n_max: int, pos_dim: int) -> torch.Tensor:
    """n_max x n_max x pos_dim: PositionalEncoding2D(pos_dim) of `positional-encodings` on zeros."""
    key = (n_max, pos_dim)
    if key not in _TABLES:
        from positional_encodings.torch_encodings import PositionalEncoding2D

        _TABLES[key] = PositionalEncoding2D(pos_dim)(torch.zeros(1, n_max, n_max, pos_dim))[
            0
        ].clone()
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


def _query(module, x, k, context, has_query):
    h = module.heads
    if has_query:
        return _heads(_linear(x, module.q_proj), h)
    if context is None:
        return k  # query-free: the keys themselves
    proj = {"qk": "q_proj", "kk": "k_proj"}[module.cross]  # qk: W_Q; kk: the same W_K
    return _heads(_linear(x, getattr(module, proj)), h)


def reference_scores(module, x, scale: str = "head", context=None):
    """Scores S before the mask, batch x heads x m x n, by the literal formulas (context: the
    keys' side of cross-attention; None: self-attention)."""
    if module.variant not in FORMULAS:
        raise NotImplementedError(f"no reference formula for variant {module.variant!r}")
    has_query, has_pos = FORMULAS[module.variant]
    source = x if context is None else context
    b, m, d = x.shape
    n = source.shape[1]
    h = module.heads
    s = scale_of(scale, d, h)
    k = _heads(_linear(source, module.k_proj), h)
    q = _query(module, x, k, context, has_query)
    if module.variant == "kv_shared":  # the keys at unit length, the queries as they are
        k = k / (k * k).sum(-1, keepdim=True).sqrt()
    dot = s * (q @ k.transpose(-2, -1))  # b x h x m x n
    if module.variant == "kv_rel":  # cross-attention too: target position i, source position j
        return dot + relative_bias(module, m, n).to(dot.dtype)
    if not has_pos:
        return dot
    p = module.map_pos.in_features
    table = package_table(module.max_len, p)[:m, :n].to(x.dtype)  # m x n x p
    literal = dot[..., None] + table  # b x h x n x n x p: the score added to every channel
    w, bias = module.map_pos.weight, module.map_pos.bias  # maps x p, maps
    if w.shape[0] == 1:  # one Linear(p -> 1) per layer, shared by the heads
        return literal @ w[0] + bias[0]
    assert w.shape[0] == h, "pos_per_head: one Linear(p -> 1) per head"
    return torch.stack([literal[:, i] @ w[i] + bias[i] for i in range(h)], dim=1)


def relative_bias(module, m, n):
    """kv_rel's heads x m x n bias, entry by entry: the table of module.rel_bias read at the offset
    of query i and key j (clipped at rel_clip), or on a grid (CLS first, then the patches row by
    row) at the patch offset (dy, dx), each clipped, and at the three CLS entries after those."""
    table, clip, grid = module.rel_bias.table, module.rel_clip, module.rel_bias.grid
    out = [[None] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            if grid is None:
                r = module.max_len - 1 if clip is None else min(clip, module.max_len - 1)
                out[i][j] = table[:, max(-r, min(r, i - j)) + r]
                continue
            rows, cols = grid
            ry, rx = (
                (rows - 1, cols - 1) if clip is None else (min(clip, rows - 1), min(clip, cols - 1))
            )
            patches = (2 * ry + 1) * (2 * rx + 1)
            if i == 0 or j == 0:  # CLS to patch, patch to CLS, CLS to CLS
                out[i][j] = table[:, patches + (2 if i == j else 0 if i == 0 else 1)]
                continue
            (yi, xi), (yj, xj) = divmod(i - 1, cols), divmod(j - 1, cols)
            dy, dx = max(-ry, min(ry, yi - yj)), max(-rx, min(rx, xi - xj))
            out[i][j] = table[:, (dy + ry) * (2 * rx + 1) + dx + rx]
    return torch.stack([torch.stack(row, -1) for row in out], -2)  # heads x m x n


def self_masked(scores, mask):
    """kv_shared's rule, per batch, head and query: -inf on the query's own key where the mask
    (-inf entries) leaves it another key; the scores as they are where it leaves none."""
    allowed = torch.ones(scores.shape, dtype=torch.bool)
    if mask is not None:
        allowed = (mask.expand(scores.shape) != float("-inf")).clone()
    out = scores.clone()
    b, h, m, n = scores.shape
    for bi in range(b):
        for hi in range(h):
            for i in range(m):
                others = [j for j in range(n) if j != i and allowed[bi, hi, i, j]]
                if others:
                    out[bi, hi, i, i] = float("-inf")
    return out


def reference_forward(module, x, mask=None, scale: str = "head", context=None):
    """(out, attention maps): softmax_row(S + M) by hand, A V, concat heads, W_O."""
    b, m, d = x.shape
    source = x if context is None else context
    scores = reference_scores(module, x, scale, context)
    if mask is not None:
        scores = scores + mask.to(scores.dtype)  # after map_pos
    if module.variant == "kv_shared" and context is None:
        scores = self_masked(scores, mask)
    shifted = scores - scores.amax(dim=-1, keepdim=True)
    e = shifted.exp()
    attn = e / e.sum(dim=-1, keepdim=True)
    v = _heads(_linear(source, module.v_proj), module.heads)
    heads = attn @ v  # b x h x m x d_h
    concat = heads.permute(0, 2, 1, 3).reshape(b, m, d)
    return _linear(concat, module.out_proj), attn
