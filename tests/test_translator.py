"""The encoder-decoder translator on the shared attention registry (variants qkv, kv, kv_pos; the
kv variants in both cross-attention modes of docs/attention.md).

Guards: decoder causality; source and target padding change nothing at real positions; the kk
mode is W_K on both sides and qk adds W_Q only in cross-attention; equal source and target
lengths still attend to the encoder states (the reference's bug), checked against the literal
formulas of tests/reference.py; every parameter learns; greedy decoding stops at <eos>, beam=1 is
greedy and a search-space-wide beam finds the best sequence; docs/protocol.md's xavier initialisation;
SDPA and manual paths agree.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from kvt.attention import make_mask
from kvt.models.translator import Translator, TranslatorConfig
from reference import reference_forward, reference_scores

VARIANTS = ("qkv", "kv", "kv_pos")
CASES = [("qkv", "qk"), ("kv", "qk"), ("kv", "kk"), ("kv_pos", "qk"), ("kv_pos", "kk")]
CASES += [("kv_rel", "qk"), ("kv_shared", "kk")]  # beyond the paper (docs/attention.md)
VOCAB, PAD, BOS, EOS, MAX_LEN = 20, 0, 2, 3, 16


def translator(attention, cross="qk", seed=0, **options):
    cfg = dict(
        attention=attention,
        vocab_size=VOCAB,
        d_model=16,
        depth=2,
        heads=2,
        pos_dim=6,
        cross=cross,
        max_len=MAX_LEN,
        init="xavier",
    )  # the translation family's init
    cfg.update(options)
    torch.manual_seed(seed)
    return Translator(TranslatorConfig(**cfg))


def ids(b, n, seed, bos=False):
    """Random real tokens (no specials); bos: the first column is <bos> (a decoder input)."""
    x = torch.randint(4, VOCAB, (b, n), generator=torch.Generator().manual_seed(seed))
    if bos:
        x[:, 0] = BOS
    return x


def pads(b, n):
    return torch.full((b, n), PAD, dtype=torch.long)


def test_protocol_settings():
    cfg = TranslatorConfig(attention="kv_pos", vocab_size=50)
    assert (cfg.d_model, cfg.depth, cfg.heads, cfg.dropout, cfg.scale, cfg.pos_dim, cfg.cross) == (
        64,
        2,
        1,
        0.1,
        "head",
        10,
        "qk",
    )
    model = Translator(cfg)
    enc, dec = model.encoder[0], model.decoder[0]
    assert len(model.encoder) == len(model.decoder) == 2 and not enc.post_norm
    assert enc.attn.attn_dropout == dec.self_attn.attn_dropout == dec.cross_attn.attn_dropout == 0.1
    assert enc.mlp[0].out_features == dec.mlp[0].out_features == 256
    assert isinstance(dec.mlp[1], torch.nn.ReLU)
    assert not hasattr(dec.self_attn, "q_proj") and hasattr(dec.cross_attn, "q_proj")
    assert dec.cross_attn.scale == pytest.approx(64**-0.5) and dec.cross_attn.max_len == 128
    assert "pos_table" not in model.state_dict()


@pytest.mark.parametrize("attention,cross", CASES)
def test_decoder_is_causal(attention, cross):
    model = translator(attention, cross).eval()
    src, tgt = ids(3, 7, 1), ids(3, 9, 2, bos=True)
    logits = model(src, tgt)
    assert logits.shape == (3, 9, VOCAB) and torch.isfinite(logits).all()
    for t in (1, 4, 8):
        changed = tgt.clone()
        changed[:, t:] = 4 + (changed[:, t:] - 4 + 1) % (VOCAB - 4)
        other = model(src, changed)
        torch.testing.assert_close(other[:, :t], logits[:, :t], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(other[:, t:], logits[:, t:])


@pytest.mark.slow
@pytest.mark.parametrize("attention,cross", CASES)
def test_padding_changes_nothing(attention, cross):
    model = translator(attention, cross).eval()
    src, tgt = ids(3, 6, 1), ids(3, 5, 2, bos=True)
    logits = model(src, tgt)
    torch.testing.assert_close(
        model(torch.cat((src, pads(3, 4)), 1), tgt), logits, rtol=1e-5, atol=1e-5
    )
    padded = model(torch.cat((src, pads(3, 2)), 1), torch.cat((tgt, pads(3, 3)), 1))
    assert padded.shape == (3, 8, VOCAB) and torch.isfinite(padded).all()
    torch.testing.assert_close(padded[:, :5], logits, rtol=1e-5, atol=1e-5)
    # one row padded inside a batch of longer rows: as if alone
    batch = torch.cat((src[:1], pads(1, 3)), 1)
    batch = torch.cat((batch, ids(2, 9, 3)))
    torch.testing.assert_close(
        model(batch, tgt[:1].expand(3, -1))[:1], logits[:1], rtol=1e-5, atol=1e-5
    )
    # the padded keys get no cross-attention weight
    maps = model.cross_attention(torch.cat((src, pads(3, 4)), 1), tgt)
    assert len(maps) == 2 and maps[0].shape == (3, 2, 5, 10)
    for m in maps:
        assert (m[..., 6:] == 0).all()
        torch.testing.assert_close(m.sum(-1), torch.ones(3, 2, 5))


@pytest.mark.parametrize("attention", ["kv", "kv_pos"])
def test_cross_modes(attention):
    """kk: no q_proj, S = s (x W_K)(memory W_K)^T (+ kv_pos's term), literally; qk: W_Q on the
    decoder side. Both models are the same but for the cross modules' q_proj."""
    qk, kk = translator(attention, "qk").eval(), translator(attention, "kk").eval()
    only_qk = set(qk.state_dict()) - set(kk.state_dict())
    assert set(kk.state_dict()) <= set(qk.state_dict())
    assert only_qk == {
        f"decoder.{i}.cross_attn.q_proj.{w}" for i in range(2) for w in ("weight", "bias")
    }
    qk.load_state_dict(kk.state_dict(), strict=False)

    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    module = kk.decoder[0].cross_attn
    assert module.cross == "kk" and not hasattr(module, "q_proj")
    w, b = module.k_proj.weight, module.k_proj.bias

    def keys(z):  # z W_K + b, split into 2 heads of 8
        return (z @ w.T + b).view(2, -1, 2, 8).transpose(1, 2)

    literal = keys(x) @ keys(memory).transpose(-2, -1) / math.sqrt(8)  # s = 1/sqrt(d_h)
    if attention == "kv_pos":
        literal = reference_scores(
            module, x, "head", context=memory
        )  # map_pos(s K K^T + P[:5, :7])
    torch.testing.assert_close(module.scores(x, memory), literal, rtol=1e-5, atol=1e-5)

    cross = qk.decoder[0].cross_attn
    torch.testing.assert_close(
        cross.scores(x, memory), reference_scores(cross, x, "head", context=memory)
    )
    src, tgt = ids(2, 7, 1), ids(2, 5, 2, bos=True)
    assert not torch.allclose(qk(src, tgt), kk(src, tgt))
    for block in qk.decoder:  # W_Q := W_K turns qk into kk
        block.cross_attn.q_proj.load_state_dict(block.cross_attn.k_proj.state_dict())
    torch.testing.assert_close(qk(src, tgt), kk(src, tgt), rtol=1e-5, atol=1e-5)


def test_qkv_ignores_cross():
    qk, kk = translator("qkv", "qk").eval(), translator("qkv", "kk").eval()
    a, b = qk.state_dict(), kk.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    src, tgt = ids(2, 6, 1), ids(2, 4, 2, bos=True)
    assert torch.equal(qk(src, tgt), kk(src, tgt))


@pytest.mark.parametrize("attention,cross", CASES)
def test_equal_lengths_attend_to_the_encoder(attention, cross):
    """S == T: the decoder equals the literal cross-attention formula on the encoder states (not
    the decoder's self-scores, as the reference computed), and a different source changes it."""
    model = translator(attention, cross, depth=1).eval()
    src, tgt = ids(2, 6, 1), ids(2, 6, 2, bos=True)
    memory, src_pad = model.encode(src)
    block = model.decoder[0]
    x = model.tgt_embedding(tgt) * 4.0 + model.pos_table[:6]  # sqrt(16)
    x = x + block.self_attn(block.norm1(x), mask=make_mask(6, causal=True))
    y = block.norm2(x)

    def finish(cross_out):
        h = x + cross_out
        return model.head(model.decoder_norm(h + block.mlp(block.norm3(h))))

    expected = finish(reference_forward(block.cross_attn, y, scale="head", context=memory)[0])
    torch.testing.assert_close(model(src, tgt), expected, rtol=1e-5, atol=1e-5)
    if attention != "qkv":  # the reference's fallback: self-attention scores among the queries
        bug = finish(reference_forward(block.cross_attn, y, scale="head")[0])
        assert not torch.allclose(model(src, tgt), bug, atol=1e-3)
    assert not torch.allclose(model(ids(2, 6, 5), tgt), model(src, tgt), atol=1e-3)


@pytest.mark.parametrize("attention,cross", CASES)
def test_every_parameter_learns(attention, cross):
    model = translator(attention, cross).train()
    src, tgt = ids(3, 7, 1), ids(3, 6, 2, bos=True)
    logits = model(src, tgt)
    F.cross_entropy(logits.reshape(-1, VOCAB), ids(3, 6, 4).reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("map_pos.bias"):  # a row-constant score shift: the softmax cancels it
            assert p.grad.abs().max() < 1e-5, name
        else:
            assert p.grad.abs().sum() > 0, name


def after_eos(out, eos=EOS):
    return (out == eos).long().cumsum(1) - (out == eos).long() > 0


def well_formed(out, eos=EOS):
    """No <bos>; <pad> exactly at the positions after a row's <eos>."""
    return not (out == BOS).any() and torch.equal(out == PAD, after_eos(out, eos))


def sequence_logprob(model, src, out):
    """Per row: the model's log-prob of the generated ids `out` (up to and including <eos>)."""
    tgt_in = torch.cat((torch.full_like(out[:, :1], BOS), out[:, :-1]), 1)
    logp = model(src, tgt_in).log_softmax(-1).gather(-1, out[..., None])[..., 0]
    return logp.masked_fill(after_eos(out), 0.0).sum(-1)


@pytest.mark.slow
@pytest.mark.parametrize("attention", VARIANTS)
def test_greedy(attention):
    """Output: the generated ids without <bos>, each row ending with <eos> then <pad>. Each id is
    the argmax given the ones before; a token chosen as <eos> truncates the rows there."""
    model = translator(attention).eval()
    with torch.no_grad():
        model.head.bias[EOS] -= 100.0  # this model never ends: 8 tokens per row
    src = torch.cat((torch.cat((ids(1, 4, 1), pads(1, 3)), 1), ids(2, 7, 2)))
    out = model.greedy(src, max_new=8)
    assert out.shape == (3, 8) and well_formed(out)
    tgt_in = torch.cat((torch.full((3, 1), BOS), out[:, :-1]), 1)
    logits = model(src, tgt_in)
    logits[..., [PAD, BOS]] = float("-inf")  # never generated
    assert torch.equal(logits.argmax(-1), out)
    for i in range(3):  # batched == alone
        alone = src[i : i + 1, :4] if i == 0 else src[i : i + 1]
        assert torch.equal(model.greedy(alone, 8), out[i : i + 1])

    # stop at <eos>: the same weights with eos_id = a token generated at step 3 of row 0
    eos = int(out[0, 2])
    stop = translator(attention, eos_id=eos).eval()
    stop.load_state_dict(model.state_dict())
    expected = []
    for row in out.tolist():
        end = row.index(eos) + 1 if eos in row else len(row)
        expected.append(row[:end] + [PAD] * (len(row) - end))
    expected = torch.tensor(expected)
    expected = expected[:, : int((expected != PAD).sum(1).max())]
    got = stop.greedy(src, 8)
    assert torch.equal(got, expected) and well_formed(got, eos)
    assert (got[0, :3] == eos).any() and (got[0, 3:] == PAD).all()
    assert model.greedy(src, 0).shape == (3, 0)
    training = translator(attention).train()
    assert training.greedy(src, 2).shape[1] <= 2 and training.training  # mode restored


@pytest.mark.slow
@pytest.mark.parametrize("attention", VARIANTS)
def test_beam_search(attention):
    """beam=1 is greedy; a beam as wide as the search space (all prefixes of max_new - 1 tokens)
    returns the most probable sequence, found here by exhaustive enumeration, so it scores at
    least as high as greedy's."""
    model = translator(attention, vocab_size=8).eval()
    src = torch.randint(4, 8, (2, 5), generator=torch.Generator().manual_seed(1))
    greedy = model.greedy(src, 6)
    assert torch.equal(model.beam_search(src, 1, 6), greedy)
    assert torch.equal(model.beam_search(src, 1, 6, length_penalty=0.0), greedy)

    allowed = [t for t in range(8) if t not in (PAD, BOS)]  # 6 tokens
    best = model.beam_search(src, beam=36, max_new=3, length_penalty=0.0)
    for i in range(2):
        sequences = {
            (a,) if a == EOS else (a, b) if b == EOS else (a, b, c)
            for a in allowed
            for b in allowed
            for c in allowed
        }  # every ending
        sequences = torch.tensor([list(s) + [PAD] * (3 - len(s)) for s in sorted(sequences)])
        scores = sequence_logprob(model, src[i : i + 1].expand(len(sequences), -1), sequences)
        mine = sequence_logprob(model, src[i : i + 1], best[i : i + 1])
        torch.testing.assert_close(mine, scores.max()[None])
        assert (
            mine >= sequence_logprob(model, src[i : i + 1], model.greedy(src[i : i + 1], 3)) - 1e-6
        )
    wide = model.beam_search(src, beam=4, max_new=6)
    assert wide.shape[0] == 2 and wide.shape[1] <= 6 and well_formed(wide)


@pytest.mark.parametrize("attention", VARIANTS)
def test_xavier_init(attention, monkeypatch):
    """Every >1-dim parameter within the xavier bound; the model-level pass redrew the attention
    modules' own init; every bias at PyTorch's default (the attention modules had zeroed theirs)."""
    model = translator(attention)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
            assert p.abs().max() <= bound + 1e-6, name
            if p.numel() >= 64:  # uniform over the whole range
                assert p.abs().max() > 0.8 * bound, name
    monkeypatch.setattr(Translator, "init_weights", lambda self: None)
    own = translator(attention)
    redrawn = {
        n
        for n, p in own.named_parameters()
        if "attn" in n and p.dim() > 1 and not torch.equal(p, model.get_parameter(n))
    }
    assert redrawn == {n for n, p in own.named_parameters() if "attn" in n and p.dim() > 1}
    assert (own.decoder[0].cross_attn.k_proj.bias == 0).all()
    bias = model.decoder[0].cross_attn.k_proj.bias
    assert (bias != 0).all() and bias.abs().max() <= 16**-0.5


@pytest.mark.parametrize("attention,cross", CASES)
def test_fused_and_manual_agree(attention, cross):
    fused, manual = (
        translator(attention, cross).eval(),
        translator(attention, cross, sdpa=False).eval(),
    )
    manual.load_state_dict(fused.state_dict())
    src = torch.cat((ids(3, 6, 1), pads(3, 2)), 1)
    tgt = torch.cat((ids(3, 5, 2, bos=True), pads(3, 1)), 1)
    torch.testing.assert_close(fused(src, tgt), manual(src, tgt), rtol=1e-5, atol=1e-5)


def test_errors():
    model = translator("kv_pos")
    too_long = f"source sequence of {MAX_LEN + 1} tokens exceeds max_len={MAX_LEN}"
    with pytest.raises(ValueError, match=too_long):
        model(ids(1, MAX_LEN + 1, 0), ids(1, 3, 0, bos=True))
    with pytest.raises(ValueError, match="target sequence .* exceeds max_len"):
        model(ids(1, 3, 0), ids(1, MAX_LEN + 1, 0, bos=True))
    with pytest.raises(ValueError, match="max_new"):
        model.greedy(ids(1, 3, 0), MAX_LEN + 1)
    with pytest.raises(ValueError, match="beam must be at least 1"):
        model.beam_search(ids(1, 3, 0), 0, 3)
    with pytest.raises(ValueError, match="cross must be one of"):
        translator("qkv", cross="q")
    with pytest.raises(ValueError, match="shape B x L"):
        model(ids(1, 3, 0)[0], ids(1, 3, 0, bos=True))
    assert model.greedy(ids(1, 3, 0), MAX_LEN).shape[1] <= MAX_LEN  # the longest decode allowed
