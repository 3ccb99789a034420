"""kvt.attention_record: the recorded maps are the module's own, and the outputs unchanged."""

import pytest
import torch
from kvt.attention import ATTENTION, build_attention, make_mask
from kvt.attention_record import recording


@pytest.mark.parametrize("variant", sorted(ATTENTION))
def test_recording_keeps_outputs_and_returns_the_modules_maps(variant):
    torch.manual_seed(0)
    attn = build_attention(variant, 16, 2, max_len=32).eval()
    x = torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[0, 5:] = True
    mask = make_mask(7, key_padding=pad)
    with torch.no_grad():
        plain = attn(x, mask=mask, causal=True)
        with recording(attn) as calls:
            out = attn(x, mask=mask, causal=True)
        _, maps = attn(x, mask=mask, causal=True, need_weights=True)
    assert torch.allclose(out, plain, atol=1e-5)
    assert len(calls) == 1 and calls[0].is_self and calls[0].causal
    assert torch.equal(calls[0].maps, maps)
    assert torch.equal(calls[0].x, x)
    full = calls[0].full_mask()
    assert torch.isinf(full[0, 0, 0, 1]) and torch.isinf(full[0, 0, 6, 5])  # future, padding
    assert "forward" not in attn.__dict__  # the wrapper is gone after the block


def test_recording_sees_every_layer_in_call_order_and_cross_attention():
    torch.manual_seed(0)
    layers = torch.nn.ModuleList(build_attention("kv", 8, 2, cross="qk") for _ in range(2))
    x, ctx = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    with torch.no_grad(), recording(layers) as calls:
        layers[0](x)
        layers[1](x, context=ctx)
    assert [c.name for c in calls] == ["0", "1"]
    assert calls[0].is_self and not calls[1].is_self
    assert calls[1].maps.shape == (2, 2, 4, 6)
