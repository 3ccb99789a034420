"""The two variants beyond the paper that test its explanations (docs/attention.md): kv_rel and
kv_shared, each against what defines it.

Guards: kv_rel's bias is a function of the offset i - j only (of (dy, dx) on an image grid),
clipped at rel_clip, with the CLS token's three entries, over target and source positions in
cross-attention, and the ViT hands it its grid; kv_shared's keys have unit length, its scores are
s k_i . k_j / |k_j|, no token attends to itself unless every other key is masked (then it attends
to itself only), and it matches the literal loops of tests/reference.py in outputs and gradients
on masks that leave a row alone.
"""

import pytest
import torch
from kvt import build_attention, make_mask
from kvt.attention import SELF_MASK
from reference import reference_forward, scale_of

D, HEADS = 24, 3


def build(variant, seed=0, **options):
    """A float64 module in eval mode with every parameter drawn afresh (the table starts at 0)."""
    torch.manual_seed(seed)
    module = build_attention(variant, D, HEADS, **{"max_len": 16, **options}).double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.4)
    return module


def inputs(b, n, seed=1, d=D):
    return torch.randn(b, n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# -- kv_rel ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [3, None])
def test_kv_rel_bias_depends_on_the_offset_only(clip):
    """B_h[i, j] = f_h(clamp(i - j, -clip, clip)): equal along every diagonal, equal beyond the
    clip, and different for different offsets within it (a random table). None: no clip."""
    n = 12
    module = build("kv_rel", rel_clip=clip, max_len=n)
    clip = n - 1 if clip is None else clip
    bias = module.score_terms(n)[1].detach()  # heads x n x n
    assert bias.shape == (HEADS, n, n)
    by_offset = {}
    for i in range(n):
        for j in range(n):
            offset = max(-clip, min(clip, i - j))
            by_offset.setdefault(offset, bias[:, i, j])
            assert torch.equal(bias[:, i, j], by_offset[offset]), (i, j)
    values = torch.stack(list(by_offset.values()))  # offsets x heads
    assert len(by_offset) == 2 * min(clip, n - 1) + 1
    assert (values[:, None] - values[None]).abs().sum(-1).add(torch.eye(len(values))).min() > 0


def test_kv_rel_bias_breaks_the_symmetry_kv_pos_keeps():
    """The term depends on the query's position: B[i, j] - B[i', j] varies with j (kv_pos's term
    is a(i) + c(j), whose row differences are constant: docs/attention.md)."""
    bias = build("kv_rel").score_terms(10)[1].detach()
    row_diff = bias[:, 3, :] - bias[:, 6, :]
    assert row_diff.std(-1).min() > 1e-2


def test_kv_rel_translation_invariance_of_the_attention():
    """The scores among tokens 3..11 of a sequence equal those of the same tokens at positions
    0..8: the bias moves with the tokens. kv_pos's table does not (it is absolute)."""
    x = inputs(1, 12)
    for variant, invariant in (("kv_rel", True), ("kv_pos", False)):
        module = build(variant)
        with torch.no_grad():
            window, shifted = module.scores(x)[:, :, 3:, 3:], module.scores(x[:, 3:])
        assert torch.allclose(window, shifted, rtol=0, atol=1e-12) == invariant, variant


def grid_token(rows_cols, r, c):
    return 1 + r * rows_cols[1] + c


@pytest.mark.parametrize("clip", [1, None])
def test_kv_rel_grid_bias_is_a_function_of_the_2d_offset(clip):
    grid = (3, 4)
    n = 1 + grid[0] * grid[1]
    module = build("kv_rel", grid=grid, rel_clip=clip)
    clip = 4 if clip is None else clip
    bias = module.score_terms(n)[1].detach()
    seen = {}
    for r1 in range(grid[0]):
        for c1 in range(grid[1]):
            for r2 in range(grid[0]):
                for c2 in range(grid[1]):
                    dy = max(-clip, min(clip, r1 - r2))
                    dx = max(-clip, min(clip, c1 - c2))
                    value = bias[:, grid_token(grid, r1, c1), grid_token(grid, r2, c2)]
                    seen.setdefault((dy, dx), value)
                    assert torch.equal(value, seen[(dy, dx)]), (r1, c1, r2, c2)
    ry, rx = min(clip, grid[0] - 1), min(clip, grid[1] - 1)
    assert len(seen) == (2 * ry + 1) * (2 * rx + 1)
    # dy and dx are not folded into one distance: (0, 1) and (1, 0) differ, as (0, 1) and (0, -1)
    assert not torch.equal(seen[(0, 1)], seen[(1, 0)])
    assert not torch.equal(seen[(0, 1)], seen[(0, -1)])


def test_kv_rel_cls_policy():
    """The CLS token (token 0) has three entries of its own: as the query towards every patch,
    as the key from every patch, and towards itself; none is a patch offset's."""
    grid = (3, 3)
    module = build("kv_rel", grid=grid)
    bias = module.score_terms(10)[1].detach()
    cls_to_patch, patch_to_cls, cls_to_cls = bias[:, 0, 1], bias[:, 1, 0], bias[:, 0, 0]
    assert (bias[:, 0, 1:] == cls_to_patch[:, None]).all()
    assert (bias[:, 1:, 0] == patch_to_cls[:, None]).all()
    patch_values = bias[:, 1:, 1:].reshape(HEADS, -1)
    for own in (cls_to_patch, patch_to_cls, cls_to_cls):
        assert not (patch_values == own[:, None]).all(0).any()
    assert not torch.equal(cls_to_patch, patch_to_cls)
    assert not torch.equal(cls_to_cls, cls_to_patch)


@pytest.mark.parametrize("cross", ["qk", "kk"])
def test_kv_rel_cross_attention_adds_the_bias_of_target_minus_source_position(cross):
    """Cross-attention (translation): kv's cross scores plus b_h(i - j), i the target position,
    j the source position, for any pair of lengths."""
    rel, kv = build("kv_rel", cross=cross, rel_clip=4), build("kv", cross=cross)
    kv.load_state_dict({k: v for k, v in rel.state_dict().items() if not k.startswith("rel_")})
    for m, n in ((6, 9), (9, 6), (7, 7)):
        x, context = inputs(2, m, seed=2), inputs(2, n, seed=3)
        with torch.no_grad():
            extra = rel.scores(x, context=context) - kv.scores(x, context=context)
        table = rel.rel_bias.table.detach()
        want = torch.stack(
            [
                torch.stack([table[:, max(-4, min(4, i - j)) + 4] for j in range(n)], -1)
                for i in range(m)
            ],
            -2,
        )
        torch.testing.assert_close(extra, want.expand_as(extra), rtol=0, atol=1e-12)


def test_kv_rel_starts_as_kv():
    """The table starts at zero: a freshly built kv_rel computes kv's function."""
    torch.manual_seed(0)
    rel = build_attention("kv_rel", D, HEADS, max_len=16).double()
    assert (rel.rel_bias.table == 0).all()
    kv = build_attention("kv", D, HEADS).double()
    kv.load_state_dict({k: v for k, v in rel.state_dict().items() if not k.startswith("rel_")})
    x = inputs(2, 7)
    torch.testing.assert_close(rel(x), kv(x), rtol=0, atol=1e-12)


def test_kv_rel_errors_name_the_problem():
    with pytest.raises(ValueError, match="rel_clip must be at least 1"):
        build_attention("kv_rel", D, HEADS, rel_clip=0)
    assert build_attention("kv_rel", D, HEADS, max_len=8).rel_bias.table.shape == (HEADS, 15)
    module = build_attention("kv_rel", D, HEADS, max_len=8)
    module(torch.randn(1, 8, D))  # exactly max_len is fine
    with pytest.raises(ValueError, match="max_len=8"):
        module(torch.randn(1, 9, D))
    on_grid = build_attention("kv_rel", D, HEADS, grid=(2, 2))
    with pytest.raises(ValueError, match="2 x 2 grid expects the CLS token and 4 patches"):
        on_grid(torch.randn(1, 4, D))


def test_vit_hands_kv_rel_its_patch_grid():
    from kvt.models.vit import VisionTransformer, ViTConfig

    cfg = ViTConfig(
        attention="kv_rel", image_size=12, channels=1, patch=4, classes=3, d_model=16,
        depth=2, heads=2,
    )  # fmt: skip
    model = VisionTransformer(cfg)
    for block in model.blocks:
        assert block.attn.rel_bias.grid == (3, 3)
        assert block.attn.rel_bias.table.shape == (2, 5 * 5 + 3)
    logits = model(torch.randn(2, 1, 12, 12))
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert model.blocks[0].attn.rel_bias.table.grad.abs().max() > 0


# -- kv_shared ------------------------------------------------------------------------------------


def test_kv_shared_keys_have_unit_length_and_queries_do_not():
    """S_ij = s k_i . k_j / |k_j| (the query is k_i as it is); s |k_i| on the diagonal, the largest
    score of its row, which the self mask (a bias on the diagonal only) takes out."""
    module = build("kv_shared")
    x = inputs(2, 8)
    with torch.no_grad():
        k = module.split_heads(module.k_proj(x))
        unit = module.keys(k)
        scores = module.scores(x)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(unit.shape[:-1], dtype=x.dtype))
    assert (k.norm(dim=-1) - 1).abs().max() > 0.1  # the raw keys (the queries) are not unit
    s = scale_of("head", D, HEADS)
    norms = k.norm(dim=-1)
    want = s * torch.einsum("bhid,bhjd->bhij", k, k) / norms[:, :, None, :]
    eye = torch.eye(8, dtype=torch.bool)
    torch.testing.assert_close(scores[..., ~eye], want[..., ~eye])
    torch.testing.assert_close(scores[..., eye], s * norms)  # scores() leaves masks out
    bias = module.score_terms(8)[1]
    assert (bias[..., eye] == SELF_MASK).all() and (bias[..., ~eye] == 0).all()
    # why the mask: without it each token's own score tops its row (Cauchy-Schwarz)
    assert (want.diagonal(dim1=-2, dim2=-1) >= want.amax(-1) - 1e-12).all()


@pytest.mark.parametrize("path", ["sdpa", "manual"])
def test_kv_shared_never_attends_to_itself_beside_another_key(path):
    module = build("kv_shared")
    module.sdpa = path == "sdpa"
    x = inputs(2, 7)
    with torch.no_grad():
        _, maps = module(x, need_weights=True)
        _, causal = module(x, mask=make_mask(7, causal=True), need_weights=True)
    assert (maps.diagonal(dim1=-2, dim2=-1) == 0).all()
    assert (maps.sum(-1) - 1).abs().max() < 1e-12
    # causal: the first token has no other target and attends to itself alone; the rest never do
    assert (causal[..., 0, 0] == 1).all()
    assert (causal.diagonal(dim1=-2, dim2=-1)[..., 1:] == 0).all()


def lone_row_mask(b, n):
    """Padding plus a hand-made mask where query 2 of the first sequence may see only itself and
    query 4 of the second sequence only itself and key 0."""
    mask = make_mask(n, key_padding=torch.tensor([[False] * (n - 1) + [True], [False] * n]))
    mask = mask.expand(b, 1, n, n).clone()
    mask[0, 0, 2, :] = float("-inf")
    mask[0, 0, 2, 2] = 0.0
    mask[1, 0, 4, :] = float("-inf")
    mask[1, 0, 4, [0, 4]] = 0.0
    return mask


@pytest.mark.parametrize("path", ["sdpa", "manual"])
def test_kv_shared_lone_target_attends_to_itself(path):
    """A query whose every other key is masked attends to itself alone; one with one other key
    gives that key all its weight; outputs and gradients equal the literal loops (reference)."""
    module = build("kv_shared")
    x = inputs(2, 7)
    mask = lone_row_mask(2, 7)
    with torch.no_grad():
        _, maps = module(x, mask=mask, need_weights=True)
    assert maps[0, :, 2, 2].eq(1).all() and maps[0, :, 2].sum(-1).eq(1).all()
    assert maps[1, :, 4, 0].eq(1).all() and maps[1, :, 4, 4].eq(0).all()
    module.sdpa = path == "sdpa"
    outs = []
    for fn in (lambda t: module(t, mask=mask), lambda t: reference_forward(module, t, mask)[0]):
        t = x.clone().requires_grad_(True)
        out = fn(t)
        names, params = zip(*module.named_parameters())
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=out.dtype)
        outs.append((out.detach(), torch.autograd.grad((out * g).sum(), [t, *params])))
    (out, grads), (ref, ref_grads) = outs
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-10)
    for name, a, b in zip(("input", *names), grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")


def test_kv_shared_cross_attention_has_no_self_mask():
    """Between decoder and encoder states (even of equal length) no key is the query's own."""
    module = build("kv_shared", cross="kk")
    x, context = inputs(2, 6, seed=2), inputs(2, 6, seed=3)
    with torch.no_grad():
        _, maps = module(x, context=context, need_weights=True)
        _, own = module(x, context=x, need_weights=True)  # kk with c = x: the product k_i . k_i
    assert (maps.diagonal(dim1=-2, dim2=-1) > 0).all()
    assert (own.diagonal(dim1=-2, dim2=-1) > 0).all()  # cross-attention never masks the diagonal
