"""The attention registry against its contract (docs/attention.md).

Guards: for every registered variant, the SDPA path, the manual path and the literal formulas of
tests/reference.py agree in outputs, attention maps and gradients (input and every parameter),
with and without causal / key-padding masks and for both scales; the structure the analysis
relies on (kv scores are symmetric, kv and kv_pos maps are reversible, the kv_pos positional bias
splits into a row part, a column part and a constant); which parameters learn; the parameter-count
differences between variants; and the errors for bad arguments.
"""

import kvt
import pytest
import torch
from kvt import build_attention, make_mask
from reference import FORMULAS, package_table, reference_forward, reference_scores, scale_of

VARIANTS = sorted(kvt.ATTENTION)
SHAPES = [(2, 7, 16, 2), (3, 12, 32, 4), (1, 5, 24, 3)]  # batch, n, d, heads
MASKS = ["none", "causal", "padding", "causal+padding"]
MAX_LEN = 16

# Parameters whose gradient is zero by construction: they add the same amount to every score of a
# row, which the row softmax cancels. qkv: q_i . b_K does not depend on the key j. kv_pos: the bias
# b of map_pos (docs/attention.md: "the row softmax cancels a(i) and b").
SOFTMAX_INVARIANT = {
    "qkv": {"k_proj.bias"},
    "kv_pos": {"map_pos.bias"},
    "qkv_pos": {"k_proj.bias", "map_pos.bias"},
}


def build(variant, d, heads, seed=0, randomize=True, dtype=torch.float64, **options):
    """A module in eval mode; randomize: every parameter (biases included) drawn afresh, so that
    every term of the formulas is exercised (the package initialises biases to zero)."""
    options = {"pos_dim": 10, "max_len": MAX_LEN, **options}
    torch.manual_seed(seed)
    module = build_attention(variant, d, heads, **options).to(dtype).eval()
    if randomize:
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0.0, 0.4)
    return module


def mask_of(kind, batch, n):
    if kind == "none":
        return None
    pad = torch.zeros(batch, n, dtype=torch.bool)
    for i in range(batch):
        pad[i, n - 1 - i % 3 :] = True  # 1 to 3 trailing keys; key 0 is never padded
    return make_mask(n, causal="causal" in kind, key_padding=pad if "padding" in kind else None)


def outputs_and_grads(module, x, mask, path, scale="head", need_weights=False):
    """(out, maps or None, grads of a fixed random loss w.r.t. x and every named parameter)."""
    x = x.detach().clone().requires_grad_(True)
    if path == "reference":
        out, maps = reference_forward(module, x, mask, scale=scale)
    else:
        module.sdpa = path == "sdpa"
        result = module(x, mask=mask, need_weights=need_weights)
        out, maps = result if need_weights else (result, None)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(123), dtype=out.dtype)
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad((out * g).sum(), [x, *params])
    return out.detach(), maps, dict(zip(("input", *names), grads))


def assert_same(a, b, what, rtol=1e-9, atol=1e-10):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def check_three_paths(variant, shape, mask_kind, scale="head", pos_form="channel", **options):
    b, n, d, h = shape
    if variant not in FORMULAS:
        pytest.skip(f"tests/reference.py has no formula for {variant!r}")
    module = build(variant, d, h, scale=scale, **options)
    module.pos_form = pos_form
    x = torch.randn(b, n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    mask = mask_of(mask_kind, b, n)
    ref_out, ref_maps, ref_grads = outputs_and_grads(module, x, mask, "reference", scale=scale)
    assert torch.isfinite(ref_out).all()
    for path in ("sdpa", "manual"):
        out, _, grads = outputs_and_grads(module, x, mask, path)
        assert_same(out, ref_out, f"{path} output")
        assert grads.keys() == ref_grads.keys()
        for name in grads:
            assert_same(grads[name], ref_grads[name], f"{path} grad of {name}")
        _, maps, _ = outputs_and_grads(module, x, mask, path, need_weights=True)
        assert_same(maps, ref_maps, f"{path} attention maps")
    if mask_kind != "none":  # the mask is applied: masked keys get exactly zero weight
        assert (ref_maps[(mask.expand_as(ref_maps) == float("-inf"))] == 0).all()


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}n{}d{}h{}".format(*s))
@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_manual_reference_agree(variant, shape, mask_kind):
    check_three_paths(variant, shape, mask_kind)


@pytest.mark.parametrize(
    "options",
    [
        {"scale": "model"},
        {"pos_per_head": True},
        {"pos_per_head": True, "scale": "model"},
        {"bias": False},
        {"bias": False, "out_bias": True},
        {"pos_dim": 7},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_manual_reference_agree_options(variant, options):
    check_three_paths(variant, (2, 9, 24, 3), "causal+padding", **options)


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("options", [{"rel_clip": 2}, {"rel_clip": 1, "max_len": 9}])
def test_kv_rel_clipped_agrees(options, mask_kind):
    """Offsets beyond rel_clip share a bias; the literal loops clip them the same way."""
    check_three_paths("kv_rel", (2, 9, 24, 3), mask_kind, **options)


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("clip", [1, None])
def test_kv_rel_on_a_grid_agrees(clip, mask_kind):
    """An image: CLS and 3 x 4 patches, 2D offsets clipped per axis, CLS entries of its own."""
    check_three_paths("kv_rel", (2, 13, 24, 3), mask_kind, grid=(3, 4), rel_clip=clip)


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("variant", ["kv_pos", "qkv_pos"])
def test_positional_term_as_n_by_n_bias_agrees_too(variant, mask_kind):
    """The general form (an n x n bias into SDPA), kept for tables that are not separable."""
    check_three_paths(variant, (2, 9, 24, 3), mask_kind, pos_form="bias", pos_per_head=True)


@pytest.mark.parametrize("pos_per_head", [False, True])
@pytest.mark.parametrize("variant", ["kv_pos", "qkv_pos"])
def test_positional_term_runs_as_one_more_channel(variant, pos_per_head, monkeypatch):
    """The channel form hands SDPA no mask at all without one: the per-key term rides on an extra
    channel of q and k (v gets a zero one); the bias form hands it a 4-D n x n bias."""
    import torch.nn.functional as F

    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        seen.append((q.shape[-1], k.shape[-1], v.shape[-1], attn_mask))
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    module = build(variant, 24, 3, pos_per_head=pos_per_head)  # d_h 8
    module.pos_form = "channel"
    x = torch.randn(2, 9, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fast = module(x)
    assert seen == [(9, 9, 9, None)]
    module.pos_form = "bias"
    assert_same(module(x), fast, "one more channel = n x n bias")
    assert seen[1][:3] == (8, 8, 8) and seen[1][3].shape == (1, 3 if pos_per_head else 1, 9, 9)
    module.pos_form = "auto"  # the channel form once n_k > 2 d_h
    for n, width in ((15, 8), (16, 8)):  # max_len 16: d_h 8 -> 4 heads of 6 at d 24
        module(torch.randn(2, n, 24, dtype=torch.float64))
        assert seen[-1][0] == width, n
    wide = build(variant, 24, 4, pos_per_head=pos_per_head)  # d_h 6: channel above n 12
    wide.pos_form = "auto"
    for n, width in ((12, 6), (13, 7)):
        wide(torch.randn(2, n, 24, dtype=torch.float64))
        assert seen[-1][0] == width, n


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_manual_agree_float32(variant):
    """The production dtype: the additive mask/bias is cast, both paths agree to float precision."""
    module = build(variant, 32, 4, dtype=torch.float32, randomize=False)
    x = torch.randn(3, 12, 32, generator=torch.Generator().manual_seed(1))
    mask = mask_of("causal+padding", 3, 12)
    fused, _, g_fused = outputs_and_grads(module, x, mask, "sdpa")
    manual, _, g_manual = outputs_and_grads(module, x, mask, "manual")
    assert fused.dtype == torch.float32
    assert_same(fused, manual, "float32 output", rtol=1e-4, atol=1e-5)
    for name in g_fused:
        assert_same(g_fused[name], g_manual[name], f"float32 grad of {name}", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("padding", [False, True])
@pytest.mark.parametrize("pos_form", ["channel", "bias"])
@pytest.mark.parametrize("path", ["sdpa", "manual"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_flag_equals_the_causal_mask(variant, path, pos_form, padding):
    """causal=True (SDPA's causal kernels where nothing else is added) computes what the additive
    causal mask computes, on every path, also beside a padding mask."""
    if pos_form == "bias" and not variant.endswith("_pos"):
        pytest.skip("one form only without the positional term")
    module = build(variant, 24, 3, max_len=32)  # d_h 8, n 20 > 2 d_h: the channel form if asked
    module.pos_form = pos_form
    x = torch.randn(2, 20, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    pad = mask_of("padding", 2, 20) if padding else None
    full = mask_of("causal+padding" if padding else "causal", 2, 20)
    want, _, g_want = outputs_and_grads(module, x, full, path)
    module.sdpa = path == "sdpa"
    x2 = x.clone().requires_grad_(True)
    out = module(x2, mask=pad, causal=True)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(123), dtype=out.dtype)
    names, params = zip(*module.named_parameters())
    grads = dict(zip(("input", *names), torch.autograd.grad((out * g).sum(), [x2, *params])))
    assert_same(out.detach(), want, "causal flag")
    for name in g_want:
        assert_same(grads[name], g_want[name], f"causal flag, grad of {name}")


def has_n_by_n_term(module, n):
    """Whether the SDPA path hands the variant's scores an n x n bias (kv_rel's relative bias,
    kv_shared's self mask), which leaves no place for SDPA's causal kernels."""
    return module.score_terms(n, n)[1] is not None and module.column_terms(n, n) is None


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_flag_uses_sdpa_causal_kernels_without_a_mask(variant, monkeypatch):
    """Unless the variant adds an n x n term: then the causal mask is folded into that term."""
    import torch.nn.functional as F

    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, is_causal=False, **kw):
        seen.append((attn_mask, is_causal))
        return real(q, k, v, attn_mask=attn_mask, is_causal=is_causal, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    module = build(variant, 24, 3, max_len=32)
    module(torch.randn(2, 20, 24, dtype=torch.float64), causal=True)
    if has_n_by_n_term(module, 20):
        bias, is_causal = seen[0]
        assert not is_causal and bias.shape[-2:] == (20, 20)
        assert (bias[..., 0, 1:] == float("-inf")).all() and (bias[..., 1:, 0] > -1e30).all()
    else:
        assert seen == [(None, True)]
    module(torch.randn(2, 20, 24, dtype=torch.float64), mask=mask_of("padding", 2, 20), causal=True)
    assert seen[1][1] is False and seen[1][0].shape[-2:] == (20, 20)  # folded into the mask


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("pos_form", ["channel", "bias"])
@pytest.mark.parametrize("path", ["sdpa", "manual"])
def test_bf16_autocast_runs_every_path_near_float32(variant, pos_form, path):
    """precision: bf16 runs each path under autocast (the positional terms meet bfloat16
    projections there) and stays within bfloat16's precision of the float32 result."""
    if pos_form == "bias" and not variant.endswith("_pos"):
        pytest.skip("only the positional variants have a bias form")
    module = build(variant, 32, 4, dtype=torch.float32, randomize=False)
    module.pos_form = pos_form
    x = torch.randn(3, 12, 32, generator=torch.Generator().manual_seed(1))
    mask = mask_of("causal+padding", 3, 12)
    exact, _, g_exact = outputs_and_grads(module, x, mask, path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _, g_low = outputs_and_grads(module, x, mask, path)
    assert low.dtype == torch.bfloat16
    assert_same(low.float(), exact, "bf16 output", rtol=0.05, atol=0.05)
    # relative to the largest gradient: the softmax-invariant biases have an exact gradient of 0
    # and a bfloat16 one of rounding noise
    scale = max(g.abs().max().item() for g in g_exact.values())
    for name in g_exact:
        assert g_low[name].dtype == torch.float32  # weights keep float32 gradients
        assert_same(
            g_low[name] / scale, g_exact[name] / scale, f"bf16 grad of {name}", rtol=0.05, atol=0.05
        )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("scale", ["head", "model"])
def test_scale_value(variant, scale):
    module = build(variant, 24, 3, scale=scale)
    assert module.scale == pytest.approx(scale_of(scale, 24, 3), rel=1e-12)


# -- structure of the kv scores -----------------------------------------------------------------


def cycle_defect(maps):
    """max |log A_ij + log A_jk + log A_ki - log A_ik - log A_kj - log A_ji| over all triples.

    Zero iff the row-stochastic A is reversible (Kolmogorov's criterion), which holds exactly when
    A = softmax_row(S_sym + c(j)) for a symmetric S_sym and a key-only term c: a kv map, or a
    kv_pos map whose positional term does not depend on the query. A generic qkv map is not.
    """
    L = maps.log()
    Lt = L.transpose(-2, -1)
    forward = L[..., :, :, None] + L[..., None, :, :] + Lt[..., :, None, :]
    backward = L[..., :, None, :] + Lt[..., None, :, :] + Lt[..., :, :, None]
    return (forward - backward).abs().max().item()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}n{}d{}h{}".format(*s))
def test_kv_maps_are_softmax_of_symmetric_scores(shape):
    b, n, d, h = shape
    module = build("kv", d, h)
    x = torch.randn(b, n, d, dtype=torch.float64)
    with torch.no_grad():
        k = module.k_proj(x).view(b, n, h, d // h).transpose(1, 2)
        scores = scale_of("head", d, h) * k @ k.transpose(-2, -1)
        _, maps = module(x, need_weights=True)
    assert_same(scores, scores.transpose(-2, -1), "s K K^T symmetric")
    assert_same(scores, reference_scores(module, x), "kv scores = s K K^T of k_proj")
    assert_same(maps, scores.softmax(-1), "kv maps = softmax(s K K^T)")
    assert not torch.allclose(maps, maps.transpose(-2, -1))  # the maps themselves are not symmetric


# kv_rel's bias b(i - j) depends on the query's position: its maps are not reversible. kv_shared's
# maps have a zero diagonal (log undefined; tests/test_attention_variants.py checks them).
QUERY_POSITION_TERM, ZERO_DIAGONAL = {"kv_rel"}, {"kv_shared"}


@pytest.mark.parametrize("pos_per_head", [False, True])
def test_reversibility_separates_the_variants(pos_per_head):
    """kv and kv_pos maps are reversible (query-free scores, key-only positional term); qkv's and
    qkv_pos's are not: the criterion discriminates, so it is a real check of the kv structure."""
    x = torch.randn(2, 9, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for variant in VARIANTS:
        if variant not in FORMULAS or variant in ZERO_DIAGONAL:
            continue
        module = build(variant, 24, 3, pos_per_head=pos_per_head)
        with torch.no_grad():
            _, maps = module(x, need_weights=True)
        defect = cycle_defect(maps)
        if FORMULAS[variant][0] or variant in QUERY_POSITION_TERM:  # query-dependent scores
            assert defect > 1e-2, variant
        else:
            assert defect < 1e-9, variant


@pytest.mark.parametrize("pos_dim", [10, 7, 1, 20])
@pytest.mark.parametrize("pos_per_head", [False, True])
def test_kv_pos_bias_splits_into_row_column_and_constant(pos_dim, pos_per_head):
    """B_ij = w . P_ij + b = a(i) + c(j) + b for the package's table, so the row softmax of the
    kv_pos scores equals softmax_j(alpha * s * k_i . k_j + c(j)) (docs/attention.md)."""
    b, n, d, h = 2, 11, 24, 3
    module = build("kv_pos", d, h, pos_dim=pos_dim, pos_per_head=pos_per_head)
    table = package_table(MAX_LEN, pos_dim)[:n, :n].double()
    w, bias = module.map_pos.weight.detach(), module.map_pos.bias.detach()
    B = torch.einsum("ijp,mp->mij", table, w) + bias[:, None, None]  # maps x n x n
    # additively separable <=> every double difference vanishes
    double_diff = B - B[:, :, :1] - B[:, :1, :] + B[:, :1, :1]
    assert double_diff.abs().max() < 1e-12
    a = B[:, :, 0] - B[:, :1, 0]  # a(i) - a(0): the query-dependent part
    c = B[:, 0, :]  # a(0) + c(j) + b: a row constant apart from c(j)
    if pos_dim > 1:  # with one channel the table holds the row block only: c is constant
        assert c.std(-1).min() > 1e-3
    assert a.abs().max() > 1e-3  # the dropped part is not trivially zero
    x = torch.randn(b, n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _, maps = module(x, need_weights=True)
        k = module.k_proj(x).view(b, n, h, d // h).transpose(1, 2)
        alpha = w.sum(-1)[:, None, None]
        short = alpha * scale_of("head", d, h) * (k @ k.transpose(-2, -1)) + c[:, None, :]
    assert_same(maps, short.softmax(-1), "kv_pos = softmax(alpha s K K^T + c(j))")
    assert_same(reference_scores(module, x).softmax(-1), maps, "literal kv_pos maps")


# -- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("pos_per_head", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_learns(variant, pos_per_head, fused):
    """A random loss gives every parameter a non-zero gradient, except the softmax-invariant ones,
    whose gradient must then be zero (if it were not, the softmax would not be row-wise)."""
    module = build(variant, 24, 3, randomize=False, pos_per_head=pos_per_head, sdpa=fused)
    module.train()
    x = torch.randn(2, 9, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    out = module(x, mask=mask_of("padding", 2, 9))
    (out * torch.randn_like(out)).sum().backward()
    invariant = SOFTMAX_INVARIANT.get(variant, set())
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        size = p.grad.abs().max().item()
        if name in invariant:
            assert size < 1e-10, (
                f"{variant}: {name} should be cancelled by the softmax, grad {size}"
            )
        else:
            assert size > 1e-6, f"{variant}: {name} gets no gradient"


def n_params(variant, d, heads, **options):
    return sum(p.numel() for p in build_attention(variant, d, heads, **options).parameters())


@pytest.mark.parametrize("d,heads", [(16, 2), (24, 3), (64, 4)])
def test_parameter_counts(d, heads):
    assert n_params("qkv", d, heads) - n_params("kv", d, heads) == d * d + d
    assert n_params("qkv", d, heads, bias=False) - n_params("kv", d, heads, bias=False) == d * d
    assert n_params("kv", d, heads) == 3 * (d * d + d)
    for pos_dim in (10, 7):
        kv = n_params("kv", d, heads, pos_dim=pos_dim)
        assert n_params("kv_pos", d, heads, pos_dim=pos_dim) - kv == pos_dim + 1
        assert n_params("kv_pos", d, heads, pos_dim=pos_dim, pos_per_head=True) - kv == heads * (
            pos_dim + 1
        )
    assert n_params("kv_shared", d, heads) == n_params("kv", d, heads)  # no parameter of its own
    # kv_rel: one bias per head and reachable offset: -min(clip, max_len - 1) .. +min(...)
    for max_len, clip, offsets in ((16, None, 31), (16, 32, 31), (16, 4, 9), (1, 4, 1)):
        rel = n_params("kv_rel", d, heads, max_len=max_len, rel_clip=clip)
        assert rel - n_params("kv", d, heads) == heads * offsets
    # on a grid: (2 ry + 1)(2 rx + 1) patch offsets and 3 CLS entries
    for grid, clip, entries in (((3, 4), None, 5 * 7 + 3), ((3, 4), 1, 3 * 3 + 3)):
        rel = n_params("kv_rel", d, heads, grid=grid, rel_clip=clip)
        assert rel - n_params("kv", d, heads) == heads * entries


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="'kv-nopos'"):
        build_attention("kv-nopos", 16, 2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_arguments(variant):
    with pytest.raises(ValueError, match="divisible"):
        build_attention(variant, 16, 3)
    with pytest.raises(ValueError, match="'sqrt'"):
        build_attention(variant, 16, 2, scale="sqrt")


def test_kv_pos_sequence_longer_than_max_len():
    module = build_attention("kv_pos", 16, 2, max_len=8)
    module(torch.randn(1, 8, 16))  # exactly max_len is fine
    with pytest.raises(ValueError, match="max_len=8"):
        module(torch.randn(1, 9, 16))


# -- cross-attention (docs/attention.md: keys and values from the context; kv's query side by mode) ----

CROSS_SHAPES = [(2, 5, 9, 16, 2), (3, 7, 7, 24, 3), (1, 9, 4, 32, 4)]  # batch, m, n, d, heads


def cross_mask(kind, batch, m, n):
    if kind == "none":
        return None
    pad = torch.zeros(batch, n, dtype=torch.bool)
    for i in range(batch):
        pad[i, n - 1 - i % 2 :] = True  # the source's trailing padding; key 0 never padded
    return make_mask(m, n, causal=kind == "causal", key_padding=pad if kind == "padding" else None)


def cross_outputs_and_grads(module, x, context, mask, path):
    x = x.detach().clone().requires_grad_(True)
    context = context.detach().clone().requires_grad_(True)
    if path == "reference":
        out, maps = reference_forward(module, x, mask, context=context)
    else:
        module.sdpa = path == "sdpa"
        out, maps = (
            module(x, mask=mask, context=context, need_weights=True)
            if path == "manual"
            else (module(x, mask=mask, context=context), None)
        )
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad((out * g).sum(), [x, context, *params], allow_unused=True)
    return out.detach(), maps, dict(zip(("input", "context", *names), grads))


@pytest.mark.slow
@pytest.mark.parametrize("pos_form", ["channel", "bias"])
@pytest.mark.parametrize("cross", ["qk", "kk"])
@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal"])
@pytest.mark.parametrize("shape", CROSS_SHAPES, ids=lambda s: "b{}m{}n{}d{}h{}".format(*s))
@pytest.mark.parametrize("variant", VARIANTS)
def test_cross_attention_fused_manual_reference_agree(variant, shape, mask_kind, cross, pos_form):
    b, m, n, d, h = shape
    if variant not in FORMULAS:
        pytest.skip(f"tests/reference.py has no formula for {variant!r}")
    if pos_form == "bias" and not variant.endswith("_pos"):
        pytest.skip("one form only without the positional term")
    module = build(variant, d, h, cross=cross)
    module.pos_form = pos_form
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(b, m, d, dtype=torch.float64, generator=gen)
    context = torch.randn(b, n, d, dtype=torch.float64, generator=gen)
    mask = cross_mask(mask_kind, b, m, n)
    ref_out, ref_maps, ref_grads = cross_outputs_and_grads(module, x, context, mask, "reference")
    assert ref_out.shape == (b, m, d) and ref_maps.shape == (b, h, m, n)
    for path in ("sdpa", "manual"):
        out, maps, grads = cross_outputs_and_grads(module, x, context, mask, path)
        assert_same(out, ref_out, f"{path} output")
        for name, ref in ref_grads.items():
            if ref is None:
                assert grads[name] is None, f"{path}: {name} should take no part"
            else:
                assert_same(grads[name], ref, f"{path} grad of {name}")
        if maps is not None:
            assert_same(maps, ref_maps, f"{path} attention maps")
    # every projection of the mode takes part; qk's W_Q exists for cross-attention only
    assert all(
        ref_grads[k] is not None for k in ("k_proj.weight", "v_proj.weight", "out_proj.weight")
    )
    if "q_proj.weight" in ref_grads:
        assert ref_grads["q_proj.weight"] is not None


@pytest.mark.parametrize("variant", VARIANTS)
def test_equal_lengths_still_attend_to_the_context(variant):
    """m == n: the scores are between the decoder states and the encoder states, never the
    encoder's self-scores (the reference chose the mode by comparing lengths)."""
    module = build(variant, 16, 2, cross="kk")
    gen = torch.Generator().manual_seed(0)
    x, context = (torch.randn(2, 6, 16, dtype=torch.float64, generator=gen) for _ in range(2))
    out = module(x, context=context)
    assert_same(out, reference_forward(module, x, context=context)[0], "cross output")
    assert not torch.allclose(out, module(context)), "cross-attention computed self-attention"
    assert not torch.allclose(out, module(x))


def test_qk_and_kk_differ_only_as_attention_md_says():
    """kk: S = s (x W_K)(c W_K)^T with the one W_K (no new parameter; with c = x it is kv's
    self-attention); qk: a W_Q for cross-attention only (d^2 + d more parameters)."""
    d, h = 16, 2
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    kv, kk, qk = (build("kv", d, h, cross=c) for c in (None, "kk", "qk"))
    assert count(kk) == count(kv) and count(qk) == count(kv) + d * d + d
    x = torch.randn(2, 5, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert_same(kk(x, context=x), kk(x), "kk with the context x is self-attention")
    c = torch.randn(2, 7, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kx, kc = (kk.split_heads(kk.k_proj(t)) for t in (x, c))
    assert_same(kk.scores(x, context=c), kk.scale * kx @ kc.transpose(-2, -1), "kk scores")
    qx = qk.split_heads(qk.q_proj(x))
    kc = qk.split_heads(qk.k_proj(c))
    assert_same(qk.scores(x, context=c), qk.scale * qx @ kc.transpose(-2, -1), "qk scores")
    pos = build("kv_pos", d, h, cross="qk", max_len=8)
    alpha, bias = pos.score_terms(5, 7)
    assert bias.shape == (1, 5, 7)  # P[:m, :n]


def test_self_attention_only_module_refuses_a_context():
    module = build("kv", 16, 2)
    with pytest.raises(ValueError, match="cross='qk' or 'kk'"):
        module(
            torch.randn(1, 3, 16, dtype=torch.float64),
            context=torch.randn(1, 4, 16, dtype=torch.float64),
        )
    with pytest.raises(ValueError, match="cross must be one of"):
        build_attention("kv", 16, 2, cross="kq")


def test_projection_counts_read_torch_free_match_the_modules():
    """kvt.attention_names.projections (the cost estimate's d x d projections) equals the
    nn.Linear d x d weights of each registered module."""
    from kvt.attention_names import projections

    d = 16
    for name in kvt.ATTENTION:
        module = build_attention(name, d, 2)
        square = sum(
            1
            for m in module.modules()
            if isinstance(m, torch.nn.Linear)
            for _ in range(m.weight.numel() // (d * d))
            if m.in_features == d
        )
        assert projections(name) == square, name
