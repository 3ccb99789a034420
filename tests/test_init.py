"""How the attention projections start (docs/protocol.md): the reference's fused init (one xavier
matrix over the input projections, so kv's K starts with a larger bound than qkv's; map_pos
xavier with a zero bias), per-matrix xavier, and PyTorch's defaults; and which family uses which."""

import math

import pytest
import torch
from conftest import tiny_hparams
from kvt import runner
from kvt.attention import ATTENTION, build_attention

D, P = 256, 10


def make(variant, init, seed=0):
    torch.manual_seed(seed)
    return build_attention(variant, D, 4, init=init, pos_dim=P, max_len=16)


def inputs_of(attn):
    return [getattr(attn, n) for n in ("q_proj", "k_proj", "v_proj") if hasattr(attn, n)]


def near_bound(w, bound):
    """Every value within the bound, and the largest of many uniform draws close to it."""
    top = w.abs().max().item()
    return top <= bound and top > 0.98 * bound


@pytest.mark.parametrize("variant", sorted(ATTENTION))
def test_fused_init_draws_the_input_projections_as_one_matrix(variant):
    attn = make(variant, "fused")
    lins = inputs_of(attn)
    bound = math.sqrt(6 / ((len(lins) + 1) * D))  # xavier of a (n d) x d matrix
    for lin in lins:
        assert near_bound(lin.weight, bound) and torch.count_nonzero(lin.bias) == 0
    assert near_bound(attn.out_proj.weight, math.sqrt(6 / (2 * D)))
    assert torch.count_nonzero(attn.out_proj.bias) == 0
    if hasattr(attn, "map_pos"):  # xavier of 1 x p: bound sqrt(6/(1+p)), wider than the default's
        top = attn.map_pos.weight.abs().max()
        assert 1 / math.sqrt(P) < top <= math.sqrt(6 / (1 + P))
        assert torch.count_nonzero(attn.map_pos.bias) == 0


def test_kv_key_starts_larger_than_qkv_key_under_the_reference_init():
    """The bound of kv's fused [W_K; W_V] is sqrt(6/3d), of qkv's [W_Q; W_K; W_V] sqrt(6/4d)."""
    kv, qkv = make("kv", "fused"), make("qkv", "fused")
    assert kv.k_proj.weight.abs().max() > math.sqrt(6 / (4 * D))
    assert qkv.k_proj.weight.abs().max() <= math.sqrt(6 / (4 * D))
    ratio = (kv.k_proj.weight.std() / qkv.k_proj.weight.std()).item()
    assert ratio == pytest.approx(math.sqrt(4 / 3), rel=0.02)


@pytest.mark.parametrize("variant", sorted(ATTENTION))
def test_xavier_init_is_per_matrix_and_leaves_map_pos_at_the_default(variant):
    attn = make(variant, "xavier")
    for lin in inputs_of(attn) + [attn.out_proj]:
        assert near_bound(lin.weight, math.sqrt(6 / (2 * D))) and torch.count_nonzero(lin.bias) == 0
    if hasattr(attn, "map_pos"):  # nn.Linear's default: bound 1/sqrt(fan_in), bias non-zero
        assert attn.map_pos.weight.abs().max() <= 1 / math.sqrt(P)
        assert torch.count_nonzero(attn.map_pos.bias) > 0


@pytest.mark.parametrize("variant", sorted(ATTENTION))
def test_torch_init_keeps_pytorch_defaults(variant):
    attn = make(variant, "torch")
    for lin in inputs_of(attn) + [attn.out_proj]:
        assert near_bound(lin.weight, 1 / math.sqrt(D))
        assert torch.count_nonzero(lin.bias) > 0 and lin.bias.abs().max() <= 1 / math.sqrt(D)


def test_unknown_init_is_named():
    with pytest.raises(ValueError, match="init must be one of"):
        build_attention("kv", 16, 2, init="orthogonal")


@pytest.mark.parametrize(
    "case, init",
    [("synthetic", "fused"), ("anomaly", "fused"), ("vision", "torch"), ("charlm", "torch")],
)
def test_each_family_starts_as_its_reference_did(case, init):
    """docs/protocol.md: the synthetic and set-anomaly code (tutorial 6) used the fused init; the ViT
    and the char-level GPT set none; the switch reaches every attention module."""
    hp = tiny_hparams(case)
    if case == "charlm":
        hp["vocab_size"] = 65
    assert hp["init"] == init
    for mode in (init, "xavier"):
        model = runner.experiment(hp["family"]).build_model({**hp, "init": mode})
        inits = {
            m.init for m in model.modules() if hasattr(m, "reset_parameters") and hasattr(m, "init")
        }
        assert inits == {mode}
