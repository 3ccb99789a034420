"""The character-level GPT on the shared attention registry.

Guards: for every registered variant, shapes and finite logits; causality on both attention
paths (later tokens never change earlier logits: the causal mask reaches every variant, kv_pos
included); fused and manual paths agree; every parameter gets a finite gradient, non-zero except
map_pos's bias (cancelled by the row softmax); the context limit; reproducible sampling; and a
few Adam steps on a periodic text driving the loss down (the causal model can learn).
"""

import pytest
import torch
import torch.nn.functional as F

from kvt.attention import ATTENTION
from kvt.models.gpt import CharGPT, GPTConfig

VARIANTS = sorted(ATTENTION)
VOCAB, BLOCK = 11, 12


def gpt(attention, seed=0, **options):
    cfg = dict(attention=attention, vocab_size=VOCAB, block=BLOCK, d_model=24, depth=2, heads=3,
               pos_dim=6)
    cfg.update(options)
    torch.manual_seed(seed)
    return CharGPT(GPTConfig(**cfg))


def tokens(b=3, t=BLOCK, seed=1):
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def test_reference_settings():
    """The protocol's defaults and the reference layout: no K/V(/Q) bias, output bias, ReLU FFN
    of 4 d, attention dropout at the model's rate, one map_pos per head."""
    cfg = GPTConfig(attention="kv_pos", vocab_size=65)
    assert (cfg.block, cfg.d_model, cfg.depth, cfg.heads, cfg.dropout, cfg.scale, cfg.pos_dim) == \
        (64, 192, 6, 3, 0.2, "model", 20)
    model = CharGPT(cfg)
    attn = model.blocks[0].attn
    assert attn.k_proj.bias is None and attn.v_proj.bias is None and attn.out_proj.bias is not None
    assert attn.map_pos.out_features == 3 and attn.attn_dropout == 0.2
    assert attn.scale == pytest.approx(192 ** -0.5)
    assert model.blocks[0].mlp[0].out_features == 4 * 192
    assert isinstance(model.blocks[0].mlp[1], torch.nn.ReLU)
    assert not model.blocks[0].post_norm and len(model.blocks) == 6
    assert model.pos_embedding.num_embeddings == 64 and model.head.out_features == 65


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_shape_finite_and_causal(variant, fused):
    model = gpt(variant, fused=fused).eval()
    idx = tokens()
    logits = model(idx)
    assert logits.shape == (3, BLOCK, VOCAB) and torch.isfinite(logits).all()
    for t in (1, 5, BLOCK - 1):
        changed = idx.clone()
        changed[:, t:] = (changed[:, t:] + 1 + tokens(seed=t)[:, t:] % (VOCAB - 1)) % VOCAB
        assert (changed[:, t:] != idx[:, t:]).all()
        other = model(changed)
        torch.testing.assert_close(other[:, :t], logits[:, :t], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(other[:, t:], logits[:, t:])
    # a shorter sequence is a prefix of the longer one
    torch.testing.assert_close(model(idx[:, :7]), logits[:, :7], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_and_manual_agree(variant):
    fused, manual = gpt(variant, fused=True).eval(), gpt(variant, fused=False).eval()
    manual.load_state_dict(fused.state_dict())
    idx = tokens()
    torch.testing.assert_close(fused(idx), manual(idx), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_backward_every_parameter(variant):
    model = gpt(variant).train()
    idx = tokens()
    logits = model(idx)
    F.cross_entropy(logits.reshape(-1, VOCAB), tokens(seed=2).reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("map_pos.bias"):
            # a row-constant score shift: the softmax cancels it (zero up to rounding)
            assert p.grad.abs().max() < 1e-5, name
        else:
            assert p.grad.abs().sum() > 0, name


def test_context_limit():
    model = gpt("kv_pos")
    with pytest.raises(ValueError, match=f"block={BLOCK}"):
        model(tokens(t=BLOCK + 1))


def test_generate_reproducible():
    model = gpt("kv_pos").train()
    start = tokens(b=2, t=3)

    def sample(seed, n=BLOCK):  # 3 + BLOCK tokens: the context is cropped
        return model.generate(start, n, torch.Generator().manual_seed(seed))

    out = sample(0)
    assert model.training  # mode restored
    assert out.shape == (2, 3 + BLOCK) and out.dtype == torch.long
    assert torch.equal(out[:, :3], start) and ((out >= 0) & (out < VOCAB)).all()
    assert torch.equal(sample(0), out)
    assert not torch.equal(sample(1), out)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(sample(0), out)
    assert sample(0, n=0).shape == start.shape


@pytest.mark.parametrize("variant", VARIANTS)
def test_learns_periodic_text(variant):
    """abcabc...: after a few dozen Adam steps the next character is nearly certain (from the
    previous one), so the loss falls far below its starting value (about log vocab)."""
    model = gpt(variant, dropout=0.0)
    text = torch.arange(3 * 40) % 3
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)

    def loss_of(starts):
        x = torch.stack([text[s:s + BLOCK] for s in starts])
        y = torch.stack([text[s + 1:s + BLOCK + 1] for s in starts])
        return F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))

    probe = range(3)
    with torch.no_grad():
        first = loss_of(probe).item()
    for _ in range(30):
        loss = loss_of(torch.randint(0, len(text) - BLOCK - 1, (8,), generator=gen).tolist())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = loss_of(probe).item()
    assert first > 1.5 and last < 0.1 * first, (first, last)
