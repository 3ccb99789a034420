"""The set-anomaly family's runtime (declaration: kvt.families.anomaly): cached ResNet features
-> fixed sets of sets -> the encoder; and the feature rule's work."""

import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.set_anomaly import SetBatches, balanced_holdout, extract_features, make_sets, set_eval_batches
from ..models.set_anomaly import SetAnomalyConfig, SetAnomalyEncoder
from .common import fields_from

SELECT_ON = ("val_acc", "max")
TRAIN = {"optimizer": "adam", "schedule": "cosine"}
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}  # added to split_seed: one set sampler per split


def build_model(hp: dict) -> SetAnomalyEncoder:
    return SetAnomalyEncoder(fields_from(SetAnomalyConfig, hp))


def step(model, batch) -> dict:
    """Softmax over the set positions; the target is the odd one's position."""
    x, y = batch
    scores = model(x)
    return {"loss": F.cross_entropy(scores, y), "count": len(y), "acc": (scores.argmax(-1) == y).sum()}


def compute_features(images: dict, *, backbone: str, image_size: int, batch_size: int, device,
                     progress=None) -> dict:
    """{split: (features, labels)} of {split: (uint8 images, labels)} (the feature rule)."""
    return {split: (extract_features(x, weights=backbone, image_size=image_size, device=device,
                                     batch_size=batch_size, progress=progress), y)
            for split, (x, y) in images.items()}


@lru_cache(maxsize=1)
def _sets(path, set_size, val_fraction, split_seed):
    feats = torch.load(path, map_location="cpu", weights_only=True)
    (xtr, ytr), (xte, yte) = feats["train"], feats["test"]
    train_idx, val_idx = balanced_holdout(ytr, val_fraction, split_seed)
    parts = {"train": (xtr[train_idx], ytr[train_idx]), "val": (xtr[val_idx], ytr[val_idx]),
             "test": (xte, yte)}
    out = {}
    for split, (x, y) in parts.items():  # one set per image: each image is the odd one once
        try:
            members, target = make_sets(y, len(y), set_size, split_seed * 10 + SPLIT_SEEDS[split])
        except ValueError as err:
            raise ValueError(f"{path}, {split} split: {err}; use more images (anomaly.train_images, "
                             "test_images) or a larger anomaly.val_fraction") from err
        out[split] = (x, members, target)
    return out


def sets(hp: dict, inputs: dict) -> dict:
    if "features" not in inputs:
        raise ValueError("a set-anomaly run needs the feature rule's output as input 'features'")
    return _sets(str(inputs["features"]), hp["set_size"], hp["val_fraction"], hp["split_seed"])


def train_data(hp: dict, inputs: dict) -> SetBatches:
    x, members, target = sets(hp, inputs)["train"]
    return SetBatches(x, members, target, hp["batch_size"], hp["seed"])


def eval_data(hp: dict, split: str, inputs: dict):
    x, members, target = sets(hp, inputs)[split]
    return set_eval_batches(x, members, target, hp["eval_batch"])


def features_job(job) -> None:
    """The feature rule: ResNet-34 features of the dataset's images, computed once."""
    from ..data.integrity import verified_root
    from ..data.vision import load_official
    from ..jobs import setup
    from ..trainer import atomic_save

    device = setup(job)
    p = job.params
    root = verified_root(str(job.input.data))  # the files the data rule checked, unchanged since
    images = load_official(job.wildcards.task, root, verify=False,  # checked: see vision._splits
                           train_size=p.train_images, test_size=p.test_images, seed=p.split_seed)
    feats = compute_features(images, backbone=p.backbone, image_size=p.image_size,
                             batch_size=p.feature_batch, device=device,
                             progress=lambda line: print(line, file=sys.stderr))
    atomic_save(feats, Path(job.output.features))
