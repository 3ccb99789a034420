"""kvt.probe: the diagonal mass and its uniform baseline (hand-made maps with padding and a causal
mask), kv_shared's zero diagonal, kv_pos's and qkv_pos's decomposition and the numeric check that
they are a plain layer with a temperature and a bias per key (which fails once either is
perturbed), and a well-formed attention.json for every family's tiny case."""

import json
import math

import pytest
import torch
from conftest import FAMILY_INPUTS, TINY, tiny_hparams
from kvt import runner
from kvt.attention import build_attention, make_mask
from kvt.attention_record import Call, recording
from kvt.families.base import ATTENTION_FILE
from kvt.jsonfiles import write_json
from kvt.probe import (
    PROBE_CHUNK,
    add_sums,
    decompose,
    diagonal_entry,
    diagonal_sums,
    equivalence_diff,
    plain_twin,
    plain_variant,
    probe,
    probe_chunks,
)

D, HEADS = 16, 2


# -- diagonal mass on hand-made maps --------------------------------------------------------------
# Two sequences of 3 tokens, causal, the second with its last token padded; two heads. The rows
# that count: all three of sequence 0, the first two of sequence 1 (row 2's own key is padding).
# Allowed keys of those rows: 1, 2, 3 and 1, 2, so the uniform baseline is
# (1 + 1/2 + 1/3 + 1 + 1/2) / 5 = 2/3 in each head.
DIAG = {  # (sequence, head) -> the diagonal of its map
    (0, 0): [1.0, 0.25, 0.5],
    (0, 1): [1.0, 0.5, 0.2],
    (1, 0): [1.0, 0.75, 0.9],  # 0.9: a padded row, left out
    (1, 1): [1.0, 0.5, 0.9],
}


def hand_call(seqs=(0, 1)) -> Call:
    """A recorded call whose maps have DIAG on their diagonals and the rest of each row spread
    evenly over its other allowed keys (only the diagonal is read)."""
    n = 3
    pad = torch.tensor([[False, False, False], [False, False, True]])[list(seqs)]
    mask = make_mask(n, key_padding=pad)
    full = mask + make_mask(n, causal=True)
    maps = torch.zeros(len(seqs), HEADS, n, n)
    for bi, s in enumerate(seqs):
        for h in range(HEADS):
            for i, d in enumerate(DIAG[s, h]):
                others = [j for j in range(n) if j != i and full[bi, 0, i, j] == 0]
                maps[bi, h, i, i] = d if others else 1.0
                for j in others:
                    maps[bi, h, i, j] = (1 - d) / len(others)
    return Call("layer", None, None, None, mask, True, maps)


def test_diagonal_mass_and_uniform_baseline_of_hand_made_maps():
    entry = diagonal_entry("layer", diagonal_sums(hand_call()), calls=1, n_max=3)
    head0 = (1 + 0.25 + 0.5 + 1 + 0.75) / 5
    head1 = (1 + 0.5 + 0.2 + 1 + 0.5) / 5
    assert entry["rows"] == 10 and entry["heads"] == 2
    assert entry["diagonal_mass_per_head"] == pytest.approx([head0, head1])
    assert entry["diagonal_mass"] == pytest.approx((head0 + head1) / 2)
    assert entry["uniform_diagonal"] == pytest.approx(2 / 3)


def test_batches_combine_weighted_by_rows():
    """Sequence 0 brings 3 rows, sequence 1 two: two calls add up to the one call of both (a mean
    of the calls' means would weigh sequence 1's rows more)."""
    whole = diagonal_entry("layer", diagonal_sums(hand_call()), 1, 3)
    parts = add_sums(diagonal_sums(hand_call((0,))), diagonal_sums(hand_call((1,))))
    split = diagonal_entry("layer", parts, 2, 3)
    assert split["diagonal_mass"] == pytest.approx(whole["diagonal_mass"], abs=1e-12)
    assert split["uniform_diagonal"] == pytest.approx(whole["uniform_diagonal"], abs=1e-12)
    means = [
        diagonal_entry("l", diagonal_sums(hand_call((s,))), 1, 3)["diagonal_mass"] for s in (0, 1)
    ]
    assert abs(sum(means) / 2 - whole["diagonal_mass"]) > 0.01


def test_a_layer_without_a_row_to_count_is_an_error():
    call = hand_call((1,))
    call.mask = torch.full_like(call.mask, float("-inf"))
    with pytest.raises(ValueError, match="no query row"):
        diagonal_entry("layer", diagonal_sums(call), 1, 3)


@pytest.mark.parametrize("causal", [False, True])
def test_kv_shared_gives_no_weight_to_itself_where_a_row_has_another_key(causal):
    """Its self mask: 0 on every diagonal beside another allowed key; under a causal mask the
    first token has only itself (weight 1), so the mass is 1/n, the baseline the mean of 1/(i+1)."""
    torch.manual_seed(0)
    n = 6
    attn = build_attention("kv_shared", D, HEADS).eval()
    with torch.no_grad(), recording(attn) as calls:
        attn(torch.randn(3, n, D), causal=causal)
    entry = diagonal_entry("attn", diagonal_sums(calls[0]), 1, n)
    assert entry["diagonal_mass"] == pytest.approx(1 / n if causal else 0.0, abs=1e-7)
    uniform = sum(1 / (i + 1) for i in range(n)) / n if causal else 1 / n
    assert entry["uniform_diagonal"] == pytest.approx(uniform)


def test_probe_chunks_cut_batches_and_items():
    batches = [(torch.arange(100) + 100 * i, torch.zeros(100)) for i in range(10)]
    chunks = list(probe_chunks(batches, max_batches=4, max_items=250))
    assert sum(len(c[0]) for c in chunks) == 250
    assert max(len(c[0]) for c in chunks) <= PROBE_CHUNK
    assert torch.equal(torch.cat([c[0] for c in chunks]), torch.arange(250))
    assert sum(len(c[0]) for c in probe_chunks(batches, max_batches=2, max_items=10**6)) == 200


# -- kv_pos decomposed ----------------------------------------------------------------------------
def positional(variant, seed=0, **options):
    """A module with every parameter drawn afresh (map_pos large enough to matter)."""
    torch.manual_seed(seed)
    module = build_attention(variant, D, HEADS, max_len=40, pos_dim=10, **options).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module


def recorded_call(module, n=12, cross=False, causal=True, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, n, D, generator=g)
    context = torch.randn(3, n + 5, D, generator=g) if cross else None
    pad = torch.zeros(3, n + 5 if cross else n, dtype=torch.bool)
    pad[1, -3:] = True
    mask = make_mask(n, pad.shape[1], key_padding=pad)
    with torch.no_grad(), recording(module) as calls:
        module(x, mask=mask, context=context, causal=causal and not cross)
    return calls[0]


CASES = [
    ("kv_pos", {}),
    ("qkv_pos", {}),
    ("kv_pos", {"pos_per_head": True}),
    ("qkv_pos", {"pos_per_head": True}),
    ("kv_pos", {"pos_form": "channel"}),
    ("kv_pos", {"pos_form": "bias"}),
]


@pytest.mark.parametrize("variant,options", CASES)
def test_the_positional_bias_is_a_row_part_plus_a_column_part(variant, options):
    module = positional(variant, **options)
    parts = decompose(module, 12, 17)
    maps = HEADS if options.get("pos_per_head") else 1
    assert parts["bias"].shape == (maps, 12, 17) and parts["c"].shape == (maps, 17)
    assert parts["remainder"].abs().max() < 1e-5 < parts["bias"].abs().max()
    w = module.map_pos.weight
    assert torch.allclose(parts["alpha"], w.sum(-1))
    assert parts["a"].std() > 0.01 and parts["c"].std() > 0.01  # both parts are there


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("variant,options", CASES)
def test_a_positional_layer_is_a_plain_layer_with_a_temperature_and_a_key_bias(
    variant, options, cross
):
    """On random weights, masks (padding, causal) and inputs, in self- and cross-attention."""
    module = positional(variant, cross="qk", **options)
    assert plain_variant(module) == variant.removesuffix("_pos")
    call = recorded_call(module, cross=cross)
    with torch.no_grad():
        diff, scale = equivalence_diff(module, call)
    assert scale > 0.5 and diff < 1e-5 * scale


@pytest.mark.parametrize("variant,options", CASES[:4])
def test_the_equivalence_check_fails_with_another_temperature_or_key_bias(variant, options):
    """It can fail: alpha 10% off, or c with a ramp over the key positions added, gives a large
    difference; a constant added to c does not (the row softmax cancels it)."""
    module = positional(variant, **options)
    call = recorded_call(module)
    parts = decompose(module, 12, 12)
    plain = plain_twin(module)
    alpha, col = parts["alpha"].detach(), parts["c"].detach()
    ramp = torch.linspace(0, 2, col.shape[-1])
    with torch.no_grad():
        _, scale = equivalence_diff(module, call, plain)
        wrong_alpha, _ = equivalence_diff(module, call, plain, alpha=alpha * 1.1)
        wrong_col, _ = equivalence_diff(module, call, plain, col=col + ramp)
        shifted, _ = equivalence_diff(module, call, plain, col=col + 3.0)
    assert wrong_alpha > 1e-3 * scale and wrong_col > 1e-2 * scale
    assert shifted < 1e-5 * scale


def test_the_plain_twin_has_the_layers_weights_and_nothing_of_the_term():
    module = positional("qkv_pos", cross="qk")
    plain = plain_twin(module)
    assert plain.variant == "qkv" and not hasattr(plain, "map_pos")
    assert torch.equal(plain.q_proj.weight, module.q_proj.weight)
    assert plain.scale == module.scale


# -- the probe on every family --------------------------------------------------------------------
@pytest.mark.parametrize("family", list(TINY))
def test_the_probe_of_every_family_writes_a_well_formed_attention_json(tmp_path, family):
    """Untrained weights (map_pos drawn afresh) of the family's tiny case with kv_pos: every
    self-attention layer's diagonal mass, and every positional layer decomposed and checked
    (translation: cross-attention and padding too)."""
    inputs = FAMILY_INPUTS[family](tmp_path)
    hp = tiny_hparams(family, attention="kv_pos")
    rt = runner.experiment(family)
    hp.update(rt.data_facts(hp, inputs))
    torch.manual_seed(0)
    model = rt.build_model(hp).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "map_pos" in name:
                p.normal_(0.0, 0.5)
    write_json(probe(model, rt, hp, inputs, torch.device("cpu")), tmp_path / ATTENTION_FILE)
    result = json.loads((tmp_path / ATTENTION_FILE).read_text())
    assert result["run"] == {k: hp[k] for k in ("family", "task", "cfg", "attention", "seed")}
    assert 0 < result["probe"]["items"] <= result["probe"]["max_items"]
    attention = [n for n, m in model.named_modules() if hasattr(m, "map_pos")]
    assert [p["name"] for p in result["positional"]] == attention
    assert {layer["name"] for layer in result["layers"]} <= set(attention)
    assert result["layers"], "no self-attention layer"
    for layer in result["layers"]:
        assert 0 <= layer["diagonal_mass"] <= 1 and 0 < layer["uniform_diagonal"] <= 1
        assert len(layer["diagonal_mass_per_head"]) == layer["heads"] == hp["heads"]
        assert layer["rows"] > 0 and layer["n_max"] > 1
    for term in result["positional"]:
        assert term["max_abs_remainder"] < 1e-5 * max(1.0, term["max_abs_bias"])
        assert term["rel_diff"] < 1e-5 and term["check_calls"] >= 1
        assert len(term["alpha"]) == term["maps"] == len(term["c"])
        assert all(len(c) == term["n"] for c in term["c"])
        assert all(math.isfinite(a) for a in term["alpha"])
    if family == "translation":  # the decoder's cross-attention is decomposed, not a layer
        layers = {x["name"] for x in result["layers"]}
        assert [t for t in result["positional"] if t["name"] not in layers]


def test_the_eval_job_writes_attention_json_beside_test_json(tmp_path):
    """runner.test probes the selected weights; the numbers of test.json do not change."""
    hp = tiny_hparams("synthetic", attention="kv")
    cpu = torch.device("cpu")
    runner.train(hp, tmp_path, tmp_path / "model.pt", cpu)
    first = runner.test(tmp_path / "model.pt", tmp_path / "test.json", cpu)
    result = json.loads((tmp_path / ATTENTION_FILE).read_text())
    assert result["run"]["attention"] == "kv" and result["positional"] == []
    assert len(result["layers"]) == hp["depth"]
    again = runner.test(tmp_path / "model.pt", tmp_path / "again.json", cpu)
    assert first == again
