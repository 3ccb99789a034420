"""Shared fixtures of the model-package tests: a tiny synthetic-run hparams factory, one thread.

Also keeps the tests from taking git's optional index lock: every run records provenance with
`git status`, and other people work in this tree while the tests run.
"""

import os

import pytest
import torch

os.environ.setdefault("GIT_OPTIONAL_LOCKS", "0")  # inherited by the subprocesses of the tests


def tiny_hparams(**overrides) -> dict:
    """A complete hparams dict of a synthetic run, a few seconds' worth at most on one CPU thread:
    512 train sequences of length 8, batch 64 -> 8 steps per epoch, 2 epochs, validated 4 times
    per epoch (and at step 0)."""
    hp = {"task": "reverse", "attention": "kv_pos", "seed": 0, "seq_len": 8, "d_model": 16,
          "depth": 1, "heads": 2, "dropout": 0.1, "scale": "head", "pos_dim": 10,
          "pos_per_head": False, "fused": True, "epochs": 2, "batch_size": 64, "lr": 1e-3,
          "warmup_steps": 5, "grad_clip": 5.0, "val_per_epoch": 4, "select": "best",
          "train_size": 512, "val_size": 128, "test_size": 256}
    hp.update(overrides)
    return hp


@pytest.fixture
def hparams():
    return tiny_hparams


@pytest.fixture
def one_thread():
    """Training runs compare bit for bit: one intra-op thread, as in the resumed subprocess."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
