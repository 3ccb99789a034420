"""Shared fixtures of the model-package tests: a tiny synthetic-run hparams factory."""

import pytest


def tiny_hparams(**overrides) -> dict:
    """A complete hparams dict of a synthetic run, a few seconds' worth at most on one CPU thread:
    512 train sequences of length 8, batch 64 -> 8 steps per epoch, 2 epochs, validated 4 times
    per epoch (and at step 0). Same keys as kvt.config.synthetic_hparams gives a train job."""
    hp = {"family": "synthetic", "task": "reverse", "attention": "kv_pos", "seed": 0,
          "cfg": "n8-d16-l1-h2", "seq_len": 8, "d_model": 16,
          "depth": 1, "heads": 2, "dropout": 0.1, "scale": "head", "pos_dim": 10,
          "pos_per_head": False, "fused": True, "epochs": 2, "batch_size": 64, "lr": 1e-3,
          "warmup_steps": 5, "grad_clip": 5.0, "val_per_epoch": 4, "select": "best",
          "train_size": 512, "val_size": 128, "test_size": 256, "keep_last": False}
    hp.update(overrides)
    return hp


@pytest.fixture
def hparams():
    return tiny_hparams

