"""The set-anomaly family's runtime (declaration: kvt.families.anomaly): cached ResNet features
-> sets (training sets drawn afresh per item, or fixed; validation and test sets fixed) -> the
encoder; and the feature rule's work."""

import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.set_anomaly import (
    FreshSetBatches,
    SetBatches,
    SetSampler,
    balanced_holdout,
    extract_features,
    make_sets,
    set_eval_batches,
)
from ..models.config import fields_from
from ..models.set_anomaly import SetAnomalyConfig, SetAnomalyEncoder
from .base import Experiment

SELECT_ON = ("val_acc", "max")
TRAIN = {"optimizer": "adam", "schedule": "cosine"}
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}  # added to split_seed: one set sampler per split


def build_model(hp: dict) -> SetAnomalyEncoder:
    return SetAnomalyEncoder(fields_from(SetAnomalyConfig, hp))


def step(model, batch) -> dict:
    """Softmax over the set positions; the target is the odd one's position."""
    x, y = batch
    scores = model(x)
    return {
        "loss": F.cross_entropy(scores, y),
        "count": len(y),
        "acc": (scores.argmax(-1) == y).sum(),
    }


def compute_features(
    images: dict, *, backbone: str, image_size: int, batch_size: int, device, progress=None
) -> dict:
    """{split: (features, labels)} of {split: (uint8 images, labels)} (the feature rule)."""
    return {
        split: (
            extract_features(
                x,
                weights=backbone,
                image_size=image_size,
                device=device,
                batch_size=batch_size,
                progress=progress,
            ),
            y,
        )
        for split, (x, y) in images.items()
    }


@lru_cache(maxsize=1)
def _splits(path, val_fraction, split_seed) -> dict:
    """{split: (features, labels)}: the training images less the class-balanced hold-out, the
    hold-out (validation), the test images."""
    feats = torch.load(path, map_location="cpu", weights_only=True)
    (xtr, ytr), (xte, yte) = feats["train"], feats["test"]
    train_idx, val_idx = balanced_holdout(ytr, val_fraction, split_seed)
    return {
        "train": (xtr[train_idx], ytr[train_idx]),
        "val": (xtr[val_idx], ytr[val_idx]),
        "test": (xte, yte),
    }


def _split_error(path, split, err) -> ValueError:
    return ValueError(
        f"{path}, {split} split: {err}; use more images (anomaly.train_images, "
        "test_images) or a larger anomaly.val_fraction"
    )


@lru_cache(maxsize=3)
def _fixed_sets(path, set_size, val_fraction, split_seed, split):
    """(features, members, target): one set per image of the split (each image the odd one once),
    fixed by split_seed."""
    x, y = _splits(path, val_fraction, split_seed)[split]
    try:
        members, target = make_sets(y, len(y), set_size, split_seed * 10 + SPLIT_SEEDS[split])
    except ValueError as err:
        raise _split_error(path, split, err) from err
    return x, members, target


def _features_path(inputs: dict) -> str:
    if "features" not in inputs:
        raise ValueError("a set-anomaly run needs the feature rule's output as input 'features'")
    return str(inputs["features"])


def fixed_sets(hp: dict, inputs: dict, split: str):
    """A split's fixed sets (features, members, target); the same for every variant and seed."""
    return _fixed_sets(
        _features_path(inputs), hp["set_size"], hp["val_fraction"], hp["split_seed"], split
    )


def train_data(hp: dict, inputs: dict) -> SetBatches | FreshSetBatches:
    """Sets drawn afresh per item from (seed, step) (tutorial 6), or fixed (resample_train: false)."""
    if not hp["resample_train"]:
        x, members, target = fixed_sets(hp, inputs, "train")
        return SetBatches(x, members, target, hp["batch_size"], hp["seed"])
    path = _features_path(inputs)
    x, y = _splits(path, hp["val_fraction"], hp["split_seed"])["train"]
    try:
        sampler = SetSampler(y, hp["set_size"])
    except ValueError as err:
        raise _split_error(path, "train", err) from err
    return FreshSetBatches(x, sampler, hp["batch_size"], hp["seed"])


def eval_data(hp: dict, split: str, inputs: dict):
    x, members, target = fixed_sets(hp, inputs, split)
    return set_eval_batches(x, members, target, hp["eval_batch"])


def check_subsets(section: dict, task: str, images: dict) -> None:
    """Refuse settings the images the feature rule drew cannot hold (their classes counted:
    kvt.families.anomaly.subset_limits), naming each; `section` from the resolved configuration
    (not params: changing set_size reruns no feature rule)."""
    from ..data.facts import FACTS, ImageFacts
    from ..families.anomaly import subset_limits
    from ..limits import refuse

    classes = FACTS[task].classes

    def per_class(split: str) -> tuple[int, ...]:
        return tuple(int(c) for c in torch.bincount(images[split][1], minlength=classes))

    subset = ImageFacts(FACTS[task].title, per_class("train"), per_class("test"))
    limits = subset_limits(section, task, subset)
    refuse([lim for lim in limits if lim.broken], f"the images of {task} the feature rule drew")


def features_job(job) -> None:
    """The feature rule: ResNet-34 features of the dataset's images, computed once."""
    from ..data.integrity import verified_root
    from ..data.vision import load_official
    from ..jobs import setup
    from ..trainer import atomic_save

    device = setup(job)
    p = job.params
    root = verified_root(str(job.input.data))  # the files the data rule checked, unchanged since
    images = load_official(
        job.wildcards.task,
        root,
        verify=False,  # checked: see vision._splits
        train_size=p.train_images,
        test_size=p.test_images,
        seed=p.split_seed,
    )
    check_subsets(job.config["anomaly"], job.wildcards.task, images)  # before the ResNet pass
    feats = compute_features(
        images,
        backbone=p.backbone,
        image_size=p.image_size,
        batch_size=p.feature_batch,
        device=device,
        progress=lambda line: print(line, file=sys.stderr),
    )
    atomic_save(feats, Path(job.output.features))


class Anomaly(Experiment):
    """Set anomaly detection on cached features (kvt.experiments.base)."""

    build_model = staticmethod(build_model)
    train_data = staticmethod(train_data)
    eval_data = staticmethod(eval_data)
    step = staticmethod(step)

    def fixture_inputs(self, hp: dict, root: Path) -> dict:
        """A features file like the feature rule's: 1,200 train / 200 test 512-d vectors, 10
        classes, class-dependent means (a set's odd one can be found)."""
        gen = torch.Generator().manual_seed(0)
        centers = torch.randn(10, SetAnomalyConfig.feature_dim, generator=gen)
        feats = {}
        for split, n in (("train", 1200), ("test", 200)):
            y = torch.arange(n) % 10
            feats[split] = (
                centers[y] + 0.5 * torch.randn(n, SetAnomalyConfig.feature_dim, generator=gen),
                y,
            )
        path = Path(root) / "features.pt"
        torch.save(feats, path)
        return {"features": str(path)}

    def random_batch(self, hp: dict, generator):
        b = hp["batch_size"]
        x = torch.randn(b, hp["set_size"], SetAnomalyConfig.feature_dim, generator=generator)
        return x, torch.randint(hp["set_size"], (b,), generator=generator)

    def select_on(self, hp: dict) -> tuple[str, str]:
        return SELECT_ON

    def train_settings(self, hp: dict) -> dict:
        return TRAIN


EXPERIMENT = Anomaly()
