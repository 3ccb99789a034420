"""Shared fixtures of the model-package tests: hparams factories derived from each family's
declaration (kvt.families), so a test's run settings are exactly those a train job receives."""

import pytest
from kvt.config import deep_merge
from kvt.families import FAMILIES

# Per family: (section overrides of a run that takes seconds on one CPU thread, task, attention),
# from its declaration (Family.tiny): a family, a toy one included (KVT_PLUGINS), brings its own.
TINY = {
    name: (fam.tiny.section, fam.tiny.task, fam.tiny.attention)
    for name, fam in FAMILIES.items()
    if fam.tiny is not None
}


def family_hparams(
    family: str,
    section: dict | None = None,
    task: str | None = None,
    attention: str = "kv_pos",
    seed: int = 0,
    **overrides,
) -> dict:
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
    """A complete hparams dict of a tiny run of a family's TINY case. Synthetic: 512 train sequences of length 8, batch 64 -> 8 steps per
    epoch, 2 epochs, validated 4 times per epoch (and at step 0)."""
    section, task, attention = TINY[case]
    attention = overrides.pop("attention", attention)
    return family_hparams(case, section, task, attention, **overrides)


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


def fixture_inputs(family: str, root, **hparams) -> dict:
    """The fixture inputs of a tiny run of `family` (its runtime's fixture_inputs) under root;
    `hparams` override the tiny run's (e.g. task)."""
    from kvt import runner

    return runner.experiment(family).fixture_inputs({**tiny_hparams(family), **hparams}, root)


def vision_inputs(root, dataset: str = "cifar10") -> dict:
    """Fixture files of `dataset` under root and the data rule's manifest: a vision run's inputs."""
    return fixture_inputs("vision", root, task=dataset)


def anomaly_inputs(root) -> dict:
    """A features file like the feature rule's (kvt.experiments.anomaly's fixture_inputs)."""
    return fixture_inputs("anomaly", root)


# Inputs of each TINY case.
FAMILY_INPUTS = {name: (lambda root, name=name: fixture_inputs(name, root)) for name in TINY}
