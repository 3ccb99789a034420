"""Shared fixtures of the model-package tests: hparams factories derived from each family's
declaration (kvt.families), so a test's run settings are exactly those a train job receives."""

import pytest

from kvt.config import deep_merge
from kvt.families import FAMILIES

# Per family: (section overrides of a run that takes seconds on one CPU thread, task, attention).
TINY = {
    "synthetic": ({"grid": {"seq_len": [8], "d_model": [16], "depth": [1], "heads": [2]},
                   "train_size": 512, "val_size": 128, "test_size": 256, "epochs": 2,
                   "batch_size": 64}, "reverse", "kv_pos"),
    # CIFAR-10 fixture (augmented): 400 train images, batch 50 -> 8 steps, 2 epochs
    "vision": ({"cifar10": {"grid": {"d_model": [16], "depth": [1], "heads": [2]}, "epochs": 2,
                            "batch_size": 50, "eval_batch": 100, "val_size": 100,
                            "train_size": 400, "test_size": 100}}, "cifar10", "kv_pos"),
    # fake features (see `anomaly_inputs`): 1,080 train sets, batch 64 -> 16 steps, 2 epochs
    "anomaly": ({"grid": {"d_model": [16], "depth": [1], "heads": [2]}, "epochs": 2,
                 "batch_size": 64, "warmup_steps": 3}, "cifar100", "kv_pos"),
    # fixture pairs (see `text_inputs`): 400 train pairs, batch 50 -> 8 steps, 2 epochs
    "translation": ({"multi30k_en_de": {"grid": {"d_model": [16], "depth": [1], "heads": [2]},
                                        "vocab_size": 120, "max_len": 40, "epochs": 2,
                                        "warmup_steps": 5, "val_bleu_size": 20, "eval_batch": 30}},
                    "multi30k_en_de", "kv_pos"),
    # fixture play: 16-character blocks, 12 iterations, validated every 4 on 3 fixed batches
    "charlm": ({"shakespeare": {"grid": {"d_model": [16], "depth": [1], "heads": [2]},
                                "block": 16, "iterations": 12, "batch_size": 8, "val_every": 4,
                                "eval_batches": 3, "sample_chars": 50}},
               "shakespeare", "kv_pos"),
}


def family_hparams(family: str, section: dict | None = None, task: str | None = None,
                   attention: str = "kv_pos", seed: int = 0, **overrides) -> dict:
    """The hparams of one run of `family`: its defaults overlaid with `section`, the first
    configuration of `task`, then `overrides` (run keys)."""
    spec = FAMILIES[family]
    full = deep_merge(spec.defaults(), section or {})
    task = task or full["tasks"][0]
    cfg = next(iter(spec.configs(full, task)))
    hp = spec.hparams(full, task, cfg, attention, seed)
    unknown = set(overrides) - set(hp)
    if unknown:
        raise KeyError(f"not hparams of a {family} run: {sorted(unknown)}")
    hp.update(overrides)
    return hp


def tiny_hparams(case: str = "synthetic", **overrides) -> dict:
    """A complete hparams dict of a tiny run of a TINY case (a family, or family.task for a
    family's other tasks). Synthetic: 512 train sequences of length 8, batch 64 -> 8 steps per
    epoch, 2 epochs, validated 4 times per epoch (and at step 0)."""
    section, task, attention = TINY[case]
    attention = overrides.pop("attention", attention)
    return family_hparams(case.split(".")[0], section, task, attention, **overrides)


@pytest.fixture
def hparams():
    return tiny_hparams


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module whose runs are compared bit for bit (as in a killed
    subprocess, which runs with one thread)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def vision_inputs(root, dataset: str = "cifar10") -> dict:
    """Fixture files of `dataset` under root and the data rule's manifest: a vision run's inputs."""
    import json

    from kvt.data.vision import prepare

    info = prepare(dataset, root / "data", download_missing=False, fixtures=True)
    manifest = root / f"{dataset}.json"
    manifest.write_text(json.dumps(info))
    return {"data": str(manifest)}


def anomaly_inputs(root) -> dict:
    """A features file like the feature rule's: 1,200 train / 200 test 512-d vectors, 10 classes,
    class-dependent means (a set's odd one can be found)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 512, generator=gen)
    feats = {}
    for split, n in (("train", 1200), ("test", 200)):
        y = torch.arange(n) % 10
        feats[split] = (centers[y] + 0.5 * torch.randn(n, 512, generator=gen), y)
    path = root / "features.pt"
    torch.save(feats, path)
    return {"features": str(path)}


def text_inputs(root, dataset: str = "multi30k") -> dict:
    """Fixture texts under root, the data rule's manifest and, for translation (either direction),
    a tokenizer learned from the fixture training pairs (as the tokenizer rule does): a char-LM
    or translation run's inputs."""
    import json

    from kvt.data.text import prepare, read_pairs
    from kvt.data.tokenizer import train_tokenizer

    info = prepare(dataset, root / "data", download=False, fixtures=True)
    manifest = root / f"{dataset}.json"
    manifest.write_text(json.dumps(info))
    if dataset != "multi30k":
        return {"data": str(manifest)}
    train = read_pairs(root / "data", "train")
    model = root / "tokenizer.model"
    if not model.exists():
        train_tokenizer([s for s, _ in train] + [t for _, t in train], 120, model)
    return {"data": str(manifest), "tokenizer": str(model)}


# Inputs of each TINY case.
FAMILY_INPUTS = {"synthetic": lambda root: {}, "vision": vision_inputs, "anomaly": anomaly_inputs,
                 "translation": text_inputs, "charlm": lambda root: text_inputs(root, "shakespeare")}
