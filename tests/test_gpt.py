"""The character-level GPT on the shared attention registry.

Guards: for every registered variant, shapes and finite logits; causality on both attention
paths (later tokens never change earlier logits: the causal mask reaches every variant, kv_pos
included); SDPA and manual paths agree; every parameter gets a finite gradient, non-zero except
map_pos's bias (cancelled by the row softmax); the context limit; reproducible sampling; and a
few Adam steps on a periodic text driving the loss down (the causal model can learn); dropout at
the reference notebook's sites only (against a literal copy of its Block).
"""

import pytest
import torch
import torch.nn.functional as F
from kvt.attention import ATTENTION
from kvt.models.gpt import CharGPT, GPTConfig

VARIANTS = sorted(ATTENTION)
VOCAB, BLOCK = 11, 12


def gpt(attention, seed=0, **options):
    cfg = dict(
        attention=attention,
        vocab_size=VOCAB,
        block=BLOCK,
        d_model=24,
        depth=2,
        heads=3,
        pos_dim=6,
        scale="model",
        pos_per_head=True,
    )  # the char-LM family's settings
    cfg.update(options)
    torch.manual_seed(seed)
    return CharGPT(GPTConfig(**cfg))


def tokens(b=3, t=BLOCK, seed=1):
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def test_reference_settings():
    """The protocol's defaults and the reference layout: no K/V(/Q) bias, output bias, ReLU FFN
    of 4 d, attention dropout at the model's rate, one map_pos per head."""
    from conftest import family_hparams
    from kvt.experiments.charlm import EXPERIMENT

    # the defaults are the char-LM family's (kvt.families.charlm), the model's config receives them
    model = EXPERIMENT.build_model(
        {**family_hparams("charlm", task="shakespeare"), "vocab_size": 65}
    )
    cfg = model.cfg
    assert (cfg.block, cfg.d_model, cfg.depth, cfg.heads, cfg.dropout, cfg.scale, cfg.pos_dim) == (
        64,
        192,
        6,
        3,
        0.2,
        "model",
        20,
    )
    attn = model.blocks[0].attn
    assert attn.k_proj.bias is None and attn.v_proj.bias is None and attn.out_proj.bias is not None
    assert attn.map_pos.out_features == 3 and attn.attn_dropout == 0.2
    assert attn.scale == pytest.approx(192**-0.5)
    assert model.blocks[0].mlp[0].out_features == 4 * 192
    assert isinstance(model.blocks[0].mlp[1], torch.nn.ReLU)
    assert not model.blocks[0].post_norm and len(model.blocks) == 6
    assert model.pos_embedding.num_embeddings == 64 and model.head.out_features == 65


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("variant", VARIANTS)
def test_shape_finite_and_causal(variant, fused):
    model = gpt(variant, sdpa=fused).eval()
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
    fused, manual = gpt(variant, sdpa=True).eval(), gpt(variant, sdpa=False).eval()
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_learns_periodic_text(variant):
    """abcabc...: after a few dozen Adam steps the next character is nearly certain (from the
    previous one), so the loss falls far below its starting value (about log vocab)."""
    model = gpt(variant, dropout=0.0)
    text = torch.arange(3 * 40) % 3
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)

    def loss_of(starts):
        x = torch.stack([text[s : s + BLOCK] for s in starts])
        y = torch.stack([text[s + 1 : s + BLOCK + 1] for s in starts])
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


# -- dropout exactly where the reference notebook (gpt_dev_pos.ipynb) drops -------------------
class RefHead(torch.nn.Module):
    """gpt_dev_pos.ipynb's Head (qkv), its globals as arguments."""

    def __init__(self, n_embd, head_size, block_size, dropout):
        super().__init__()
        self.key = torch.nn.Linear(n_embd, head_size, bias=False)
        self.query = torch.nn.Linear(n_embd, head_size, bias=False)
        self.value = torch.nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)
        q = self.query(x)
        wei = q @ k.transpose(-2, -1) / (C**0.5)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = F.softmax(wei, dim=-1)
        wei = self.dropout(wei)
        v = self.value(x)
        return wei @ v


class RefMultiHeadAttention(torch.nn.Module):
    def __init__(self, n_embd, num_heads, block_size, dropout):
        super().__init__()
        self.heads = torch.nn.ModuleList(
            [RefHead(n_embd, n_embd // num_heads, block_size, dropout) for _ in range(num_heads)]
        )
        self.proj = torch.nn.Linear(n_embd, n_embd)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        return self.dropout(self.proj(out))


class RefBlock(torch.nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout):
        super().__init__()
        self.sa = RefMultiHeadAttention(n_embd, n_head, block_size, dropout)
        self.ffwd = torch.nn.Sequential(
            torch.nn.Linear(n_embd, 4 * n_embd),
            torch.nn.ReLU(),
            torch.nn.Linear(4 * n_embd, n_embd),
            torch.nn.Dropout(dropout),
        )
        self.ln1 = torch.nn.LayerNorm(n_embd)
        self.ln2 = torch.nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))


class RefGPT(torch.nn.Module):
    """The notebook's BigramLanguageModel (logits only)."""

    def __init__(self, vocab_size, n_embd, n_head, n_layer, block_size, dropout):
        super().__init__()
        self.token_embedding_table = torch.nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = torch.nn.Embedding(block_size, n_embd)
        self.blocks = torch.nn.Sequential(
            *[RefBlock(n_embd, n_head, block_size, dropout) for _ in range(n_layer)]
        )
        self.ln_f = torch.nn.LayerNorm(n_embd)
        self.lm_head = torch.nn.Linear(n_embd, vocab_size)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T))
        return self.lm_head(self.ln_f(self.blocks(x)))


def reference_copy(model: CharGPT) -> RefGPT:
    """The notebook's model holding `model`'s weights (qkv: per-head slices of Q, K, V)."""
    c = model.cfg
    ref = RefGPT(c.vocab_size, c.d_model, c.heads, c.depth, c.block, c.dropout)
    hs = c.d_model // c.heads
    with torch.no_grad():
        ref.token_embedding_table.weight.copy_(model.tok_embedding.weight)
        ref.position_embedding_table.weight.copy_(model.pos_embedding.weight)
        for ours, theirs in zip(model.blocks, ref.blocks):
            for h, head in enumerate(theirs.sa.heads):
                for name, proj in (
                    ("key", ours.attn.k_proj),
                    ("query", ours.attn.q_proj),
                    ("value", ours.attn.v_proj),
                ):
                    getattr(head, name).weight.copy_(proj.weight[h * hs : (h + 1) * hs])
            theirs.sa.proj.load_state_dict(ours.attn.out_proj.state_dict())
            theirs.ffwd[0].load_state_dict(ours.mlp[0].state_dict())
            theirs.ffwd[2].load_state_dict(ours.mlp[3].state_dict())
            theirs.ln1.load_state_dict(ours.norm1.state_dict())
            theirs.ln2.load_state_dict(ours.norm2.state_dict())
        ref.ln_f.load_state_dict(model.norm.state_dict())
        ref.lm_head.load_state_dict(model.head.state_dict())
    return ref


def marking_dropout(x, p=0.5, training=True, inplace=False):
    """A deterministic stand-in for dropout: scales the last axis's entries by 1, 2, 3, 1, ...
    Sites that differ (an extra, a missing or a moved dropout) change the logits."""
    if not training or p == 0:
        return x
    return x * (1 + torch.arange(x.shape[-1], dtype=x.dtype) % 3)


@pytest.mark.parametrize("fused", [True, False])
def test_dropout_sites_are_the_reference_notebooks(monkeypatch, fused):
    """The reference's Block drops the attention weights, the projected attention output and the
    feed-forward's output, and nothing else (not the embeddings, not after the ReLU). With every
    dropout replaced by the same deterministic marking, our model and a literal copy of the
    notebook's (same weights) give the same logits, in training mode on the manual path; in eval
    mode (dropout off) on both paths."""
    model = gpt("qkv", heads=3, sdpa=fused, dropout=0.2)
    ref = reference_copy(model)
    idx = tokens()
    model.eval(), ref.eval()
    torch.testing.assert_close(model(idx), ref(idx), rtol=1e-5, atol=1e-5)
    if fused:
        return  # SDPA's own dropout kernel cannot be marked
    monkeypatch.setattr(F, "dropout", marking_dropout)
    model.train(), ref.train()
    marked = model(idx)
    torch.testing.assert_close(marked, ref(idx), rtol=1e-5, atol=1e-5)
    model.eval()
    assert not torch.allclose(marked, model(idx))  # the marking does act


def test_dropout_modules():
    """Per block: one dropout on the attention output and the feed-forward output (the block's
    residual dropout), the attention weights at the same rate; none on the embeddings or inside
    the feed-forward; rate 0 leaves training mode equal to eval mode."""
    model = gpt("kv_pos", dropout=0.2)
    drops = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [f"blocks.{i}.drop" for i in range(len(model.blocks))]
    assert all(b.attn.attn_dropout == 0.2 and b.drop.p == 0.2 for b in model.blocks)
    assert [type(m).__name__ for m in model.blocks[0].mlp] == [
        "Linear",
        "ReLU",
        "Identity",
        "Linear",
    ]
    still = gpt("kv_pos", dropout=0.0)
    idx = tokens()
    torch.testing.assert_close(still.train()(idx), still.eval()(idx))
