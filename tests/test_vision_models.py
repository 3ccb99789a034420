"""The ViT and the set-anomaly family: models on the shared attention registry, and the set data.

Guards: every registered variant trains through both models (shapes, finite outputs, a finite
gradient for every parameter, non-zero except where the row softmax cancels the parameter); the
ViT's patching, token count, SDPA/manual agreement and attention maps (kv maps come from
symmetric scores); the set model's permutation equivariance (qkv, kv) and kv_pos breaking it;
the sets (odd one out of another class at a uniform position, reproducible), the class-balanced
hold-out, the frozen ResNet features (random weights, and the offline error for missing ImageNet
weights), and resumable training batches.
"""

import pytest
import torch
import torch.nn.functional as F
from kvt.attention import ATTENTION
from kvt.data.set_anomaly import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SetBatches,
    balanced_holdout,
    extract_features,
    make_sets,
    set_eval_batches,
)
from kvt.models.set_anomaly import SetAnomalyConfig, SetAnomalyEncoder
from kvt.models.vit import VisionTransformer, ViTConfig, image_to_patches

VARIANTS = sorted(ATTENTION)


def vit(attention, seed=0, **options):
    cfg = dict(
        attention=attention,
        image_size=8,
        channels=3,
        patch=4,
        classes=5,
        d_model=16,
        depth=2,
        heads=2,
        pos_dim=6,
    )
    cfg.update(options)
    torch.manual_seed(seed)
    return VisionTransformer(ViTConfig(**cfg))


def set_model(attention, seed=0, **options):
    cfg = dict(attention=attention, feature_dim=12, set_size=6, d_model=16, depth=2, heads=2)
    cfg.update(options)
    torch.manual_seed(seed)
    return SetAnomalyEncoder(SetAnomalyConfig(**cfg))


def softmax_invariant(model, name):
    """Parameters adding a constant to every score of a row (zero gradient by construction): the
    bias of map_pos, and the key bias of a variant with a query projection (q_i . b_K)."""
    if name.endswith("map_pos.bias"):
        return True
    attn = model.get_submodule(name.rsplit(".", 2)[0]) if name.endswith("k_proj.bias") else None
    return attn is not None and hasattr(attn, "q_proj")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", ["vit", "set"])
def test_forward_backward_every_variant(family, variant):
    torch.manual_seed(1)
    if family == "vit":
        model, x = vit(variant), torch.randn(3, 3, 8, 8)
        expected = (3, 5)
    else:
        model, x = set_model(variant), torch.randn(3, 6, 12)
        expected = (3, 6)
    out = model.train()(x)
    assert out.shape == expected and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if not softmax_invariant(model, name):
            assert p.grad.abs().sum() > 0, name


def test_vit_has_no_key_bias_and_an_output_bias():
    model = vit("qkv")
    attn = model.blocks[0].attn
    assert attn.q_proj.bias is None and attn.k_proj.bias is None and attn.v_proj.bias is None
    assert attn.out_proj.bias is not None
    assert isinstance(model.head[1], torch.nn.GELU) and model.head[0].out_features == 16


def test_patch_embedding_is_per_patch_linear():
    model = vit("kv", image_size=8, patch=4, channels=2)
    images = torch.randn(2, 2, 8, 8)
    emb = model.patch_embed(image_to_patches(images, 4))
    assert emb.shape == (2, 4, 16)
    w, b = model.patch_embed.weight, model.patch_embed.bias
    for i in range(2):
        for r in range(2):
            for c in range(2):
                patch = images[i, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].reshape(
                    -1
                )  # C, row, col
                torch.testing.assert_close(emb[i, 2 * r + c], w @ patch + b)


@pytest.mark.parametrize("size,patch,tokens", [(8, 4, 5), (28, 7, 17), (32, 8, 17), (12, 2, 37)])
def test_n_tokens(size, patch, tokens):
    model = vit("kv_pos", image_size=size, patch=patch, depth=1)
    assert model.n_tokens == tokens == model.pos_embedding.shape[1]
    assert model.blocks[0].attn.max_len == tokens  # the positional table covers the CLS token
    assert model(torch.randn(1, 3, size, size)).shape == (1, 5)


def test_bad_image_size_and_shape_raise():
    with pytest.raises(ValueError, match="not divisible"):
        vit("qkv", image_size=10, patch=4)
    with pytest.raises(ValueError, match="expected images"):
        vit("qkv")(torch.randn(1, 3, 12, 12))
    with pytest.raises(ValueError, match="expected features"):
        set_model("qkv")(torch.randn(1, 6, 11))


@pytest.mark.parametrize("variant", VARIANTS)
def test_vit_fused_equals_manual(variant):
    fused, manual = vit(variant, sdpa=True), vit(variant, seed=5, sdpa=False)
    manual.load_state_dict(fused.state_dict())
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(fused.eval()(x), manual.eval()(x), atol=1e-5, rtol=1e-4)


def symmetric_up_to_row_constants(maps):
    """softmax_row(S) with S symmetric (up to a per-column term): log A_ij = S_ij - u_i, so
    log A_ij - log A_ji = u_j - u_i, and log A + (u - u_0) (recovered from row 0 of that
    difference) is symmetric."""
    log_a = maps.double().log()
    diff = log_a - log_a.transpose(-2, -1)
    fixed = log_a + diff[..., 0, :].unsqueeze(-1)
    return torch.allclose(fixed, fixed.transpose(-2, -1), atol=1e-4)


@pytest.mark.parametrize("family", ["vit", "set"])
def test_attention_maps(family):
    for variant in ("qkv", "kv", "kv_pos"):
        if family == "vit":
            model, x, n = vit(variant, dropout=0.3), torch.randn(2, 3, 8, 8), 5
        else:
            model, x, n = set_model(variant, dropout=0.3), torch.randn(2, 6, 12), 6
        model.train()
        maps = model.attention_maps(x)
        assert model.training  # mode restored
        assert len(maps) == 2 and all(m.shape == (2, 2, n, n) for m in maps)
        for m in maps:
            torch.testing.assert_close(m.sum(-1), torch.ones(2, 2, n))
        # eval mode inside: no dropout, the same maps every call
        for a, b in zip(maps, model.attention_maps(x)):
            torch.testing.assert_close(a, b)
        # kv: symmetric scores; kv_pos adds a column term c(j), which this check cannot tell from
        # row constants (docs/attention.md: its maps are reversible too); qkv's scores are not symmetric
        assert symmetric_up_to_row_constants(maps[1]) == (variant != "qkv")


@pytest.mark.parametrize("variant", ["qkv", "kv", "kv_pos"])
def test_set_model_permutation_equivariance(variant):
    model = set_model(variant).eval()
    x = torch.randn(4, 6, 12)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        gap = (model(x)[:, perm] - model(x[:, perm])).abs().max().item()
    if variant == "kv_pos":
        assert gap > 1e-4  # the positional term depends on the position, not on the element
    else:
        assert gap < 1e-5


def grouped_labels(n_classes=10, per_class=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=g)]


def test_make_sets_structure_and_reproducibility():
    labels = grouped_labels()
    members, target = make_sets(labels, 2000, 10, seed=3)
    assert members.shape == (2000, 10) and target.shape == (2000,)
    assert members.dtype == target.dtype == torch.int64
    lab = labels[members]
    odd_label = lab.gather(1, target[:, None]).squeeze(1)
    normal = torch.ones_like(lab, dtype=torch.bool).scatter(1, target[:, None], False)
    normal_labels = lab[normal].view(2000, 9)
    assert (normal_labels == normal_labels[:, :1]).all()
    assert (odd_label != normal_labels[:, 0]).all()
    assert all(len(set(row.tolist())) == 10 for row in members)  # distinct images
    again = make_sets(labels, 2000, 10, seed=3)
    assert torch.equal(members, again[0]) and torch.equal(target, again[1])
    other = make_sets(labels, 2000, 10, seed=4)
    assert not torch.equal(members, other[0])
    # every image is the odd one exactly once when there are as many sets as images
    m, t = make_sets(labels, len(labels), 10, seed=0)
    assert torch.equal(m.gather(1, t[:, None]).squeeze(1).sort().values, torch.arange(len(labels)))


def test_make_sets_target_position_uniform():
    _, target = make_sets(grouped_labels(per_class=20), 20_000, 10, seed=11)
    counts = torch.bincount(target, minlength=10).double()
    chi2 = ((counts - 2000) ** 2 / 2000).sum().item()
    assert chi2 < 40  # df 9: P(chi2 > 40) ~ 1e-5; the tutorial's "always last" gives 180,000


def test_make_sets_uses_every_set_class():
    labels = grouped_labels(n_classes=5, per_class=12)
    members, target = make_sets(labels, 500, 4, seed=0)
    set_class = labels[members.gather(1, ((target + 1) % 4)[:, None]).squeeze(1)]
    assert set(set_class.tolist()) == set(range(5))


def test_make_sets_errors():
    with pytest.raises(ValueError, match="at least 2 classes"):
        make_sets(torch.zeros(50, dtype=torch.long), 10, 5, seed=0)
    labels = torch.cat((torch.zeros(20, dtype=torch.long), torch.ones(3, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have fewer than set_size-1=4"):
        make_sets(labels, 10, 5, seed=0)


def test_balanced_holdout():
    labels = torch.cat((grouped_labels(n_classes=10, per_class=50), torch.full((20,), 10)))
    train, val = balanced_holdout(labels, 0.1, seed=2)
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert torch.equal(torch.cat((train, val)).sort().values, torch.arange(len(labels)))
    per_class = torch.bincount(labels[val], minlength=11)
    assert per_class[:10].tolist() == [5] * 10 and per_class[10] == 2
    again = balanced_holdout(labels, 0.1, seed=2)
    assert torch.equal(val, again[1])
    assert not torch.equal(val, balanced_holdout(labels, 0.1, seed=3)[1])
    with pytest.raises(ValueError, match="fraction"):
        balanced_holdout(labels, 1.0, seed=0)


def tiny_images(n=5, seed=0):
    return torch.randint(
        0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.slow
def test_extract_features_random_weights_deterministic():
    images = tiny_images()
    lines = []
    state = torch.get_rng_state()
    a = extract_features(
        images, weights="random", image_size=64, batch_size=2, progress=lines.append
    )
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    b = extract_features(images, weights="random", image_size=64, batch_size=4)
    assert a.shape == (5, 512) and a.dtype == torch.float32 and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    assert lines[-1] == "features: 3/3 batches"
    assert not torch.allclose(a[0], a[1])
    with pytest.raises(ValueError, match="imagenet, random"):
        extract_features(images, weights="resnet", image_size=64)


def fail_download(*args, **kwargs):
    raise OSError("network is unreachable")


def test_extract_features_imagenet_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail_download)
    expected = tmp_path / "checkpoints" / "resnet34-b627a593.pth"
    with pytest.raises(RuntimeError) as err:
        extract_features(tiny_images(2), weights="imagenet", image_size=64)
    assert str(expected) in str(err.value) and "weights: random" in str(err.value)
    assert "download.pytorch.org" in str(err.value)


@pytest.mark.slow
def test_extract_features_imagenet_from_checkpoint_folder(tmp_path, monkeypatch):
    """A file at the hub path is loaded without a download; features equal a manual computation."""
    from torchvision.models import resnet34

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail_download)
    torch.manual_seed(7)
    net = resnet34(weights=None).eval()
    (tmp_path / "checkpoints").mkdir()
    torch.save(net.state_dict(), tmp_path / "checkpoints" / "resnet34-b627a593.pth")
    images = tiny_images(3)
    feats = extract_features(images, weights="imagenet", image_size=64)
    net.fc = torch.nn.Identity()
    x = F.interpolate(images.float() / 255, size=(64, 64), mode="bilinear", antialias=True)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        torch.testing.assert_close(feats, net(x))


def test_set_batches_resume_across_epochs():
    features = torch.arange(50, dtype=torch.float32)[:, None].repeat(1, 3)  # row i holds i
    members, target = make_sets(grouped_labels(n_classes=5, per_class=10), 23, 4, seed=0)
    data = SetBatches(features, members, target, batch_size=5, seed=9)
    assert data.steps_per_epoch == 4
    stream = data.batches(0)
    full = [next(stream) for _ in range(12)]
    stream = data.batches(6)
    tail = [next(stream) for _ in range(6)]
    for (xa, ya), (xb, yb) in zip(full[6:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, y = full[0]
    assert x.shape == (5, 4, 3) and y.shape == (5,)
    # each batch row is one set with its own target; an epoch visits distinct sets
    rows = {tuple(m.tolist()): t.item() for m, t in zip(members, target)}
    epoch0 = [tuple(r[:, 0].long().tolist()) for x, _ in full[:4] for r in x]
    assert len(set(epoch0)) == 20
    for x, y in full:
        for r, t in zip(x, y):
            assert rows[tuple(r[:, 0].long().tolist())] == t.item()
    assert [torch.equal(a[0], b[0]) for a, b in zip(full[:4], data.epoch(0))] == [True] * 4
    assert not torch.equal(full[0][0], full[4][0])  # epochs are shuffled differently
    with pytest.raises(ValueError, match="no batch"):
        SetBatches(features, members, target, batch_size=24, seed=0)


def test_set_eval_batches_in_order():
    features = torch.randn(50, 3)
    members, target = make_sets(grouped_labels(n_classes=5, per_class=10), 23, 4, seed=0)
    batches = set_eval_batches(features, members, target, batch_size=10)
    for _ in range(2):  # a fresh iterator every call
        xs, ys = zip(*batches())
        assert [len(y) for y in ys] == [10, 10, 3]
        assert torch.equal(torch.cat(xs), features[members]) and torch.equal(torch.cat(ys), target)


@pytest.mark.parametrize("family", ["vit", "set"])
def test_attention_maps_are_those_of_forward(family):
    """The maps are the ones the forward pass uses (same inputs to every block's attention)."""
    model = (vit("kv_pos") if family == "vit" else set_model("kv_pos")).eval()
    x = torch.randn(2, 3, 8, 8) if family == "vit" else torch.randn(2, 6, 12)
    seen = []

    def keep_maps(attn):
        forward = attn.forward

        def with_maps(inp, mask=None, need_weights=False, causal=False):
            out, maps = forward(inp, mask=mask, need_weights=True, causal=causal)
            seen.append(maps)
            return out

        return with_maps

    for block in model.blocks:
        block.attn.forward = keep_maps(block.attn)
    model(x)
    for block in model.blocks:
        del block.attn.forward  # back to the class's forward
    maps = model.attention_maps(x)
    assert len(seen) == len(maps) == 2
    for a, b in zip(seen, maps):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_vit_validates_twice_per_epoch(tmp_path):
    """The reference's Trainer(val_check_interval=0.5) (ViT_pos.py, ViT-nist_pos.py): every vision
    task validates twice per epoch by default, and the weights tested are the best of those."""
    import csv

    from conftest import FAMILY_INPUTS, tiny_hparams
    from kvt import runner
    from kvt.families import FAMILIES

    defaults = FAMILIES["vision"].defaults()
    assert all(defaults[task]["val_per_epoch"] == 2 for task in FAMILIES["vision"].tasks)
    hp = tiny_hparams("vision")  # 400 images, batch 50: 8 steps an epoch, 2 epochs
    assert hp["val_per_epoch"] == 2
    run = tmp_path / "run"
    record = runner.train(
        hp, run, run / "model.pt", torch.device("cpu"), inputs=FAMILY_INPUTS["vision"](tmp_path)
    )
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 4, 8, 12, 16]
    best = max(rows[1:], key=lambda r: float(r["val_acc"]))  # the first of equals
    assert record["selected"]["step"] == int(best["step"])
