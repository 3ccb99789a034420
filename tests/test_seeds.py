"""Seeds: the range every seed is held to, and the seeds derived from a run's (kvt.seeds)."""

import re

import pytest
import torch
from conftest import FAMILY_INPUTS, tiny_hparams
from kvt import runner
from kvt.config import load_schema, resolve
from kvt.seeds import EPOCH_STRIDE, SEED_MAX, STEP_STRIDE, check_seed, derived

BASE = {"preset": "paper", "presets": {"paper": {}}}


class Stop(Exception):
    pass


def test_derived_seeds_are_the_arithmetic_they_replace():
    """Same seeds, same numbers: derived is seed * stride + k, as the code it replaced."""
    for seed in (0, 1, 7):
        assert derived(seed, EPOCH_STRIDE, 3) == seed * 100_003 + 3
        assert derived(seed, STEP_STRIDE, 41) == seed * 1_000_003 + 41


def test_the_largest_seed_derives_seeds_torch_accepts():
    """SEED_MAX with a step count far beyond any run (2^62) still seeds a torch generator; the
    strides keep distinct seeds apart."""
    for stride in (EPOCH_STRIDE, STEP_STRIDE):
        torch.Generator().manual_seed(derived(SEED_MAX, stride, 2**62))
        assert derived(SEED_MAX, stride, 0) != derived(SEED_MAX - 1, stride, 0)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "3"])
def test_seeds_out_of_range_are_refused_by_name(seed):
    with pytest.raises((ValueError, TypeError), match=r"seed|2\^32"):
        check_seed(seed)


@pytest.mark.parametrize(
    "bad, good, where",
    [
        ({"seeds": [0, 2**32]}, {"seeds": [0, SEED_MAX]}, "seeds[1]"),
        (
            {"synthetic": {"seeds": [2**32 + 5]}},
            {"synthetic": {"seeds": [SEED_MAX]}},
            "synthetic.seeds",
        ),
        (
            {"vision": {"split_seed": 2**32}},
            {"vision": {"split_seed": SEED_MAX}},
            "vision.split_seed",
        ),
        ({"anomaly": {"split_seed": -1}}, {"anomaly": {"split_seed": 0}}, "anomaly.split_seed"),
    ],
)
def test_the_schema_holds_every_seed_to_the_range(bad, good, where):
    with pytest.raises(ValueError, match=re.escape(where)):
        resolve(BASE, bad, load_schema())
    resolve(BASE, good, load_schema())


@pytest.mark.parametrize("family", list(FAMILY_INPUTS))
def test_every_family_trains_at_the_largest_seed(family, tmp_path):
    """A run (and a split) seeded with 2^32 - 1 draws its data order and per-step generators
    (augmentation, text offsets, fresh sets) without leaving any generator's range."""
    hp = tiny_hparams(family, seed=SEED_MAX)
    if "split_seed" in hp:
        hp["split_seed"] = SEED_MAX
    steps = []

    def stop(step):
        steps.append(step)
        if len(steps) == 3:
            raise Stop

    inputs = FAMILY_INPUTS[family](tmp_path)
    with pytest.raises(Stop):
        runner.train(
            hp,
            tmp_path / "run",
            tmp_path / "run" / "model.pt",
            torch.device("cpu"),
            inputs=inputs,
            on_step=stop,
        )
    assert len(steps) == 3


def test_a_run_seed_beyond_the_range_is_named(tmp_path):
    hp = tiny_hparams("synthetic", seed=2**32)
    with pytest.raises(ValueError, match=r"seed=4294967296 is not an integer in \[0, 4294967295\]"):
        runner.train(hp, tmp_path, tmp_path / "model.pt", torch.device("cpu"))
