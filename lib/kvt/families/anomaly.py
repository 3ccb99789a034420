"""Set anomaly detection on CIFAR-100 (docs/protocol.md; UvA tutorial 6): in a set of 10 images, 9 of
one class and 1 of another, find the odd one. Frozen ResNet-34 features are computed once by
their own rule and cached; training sets are drawn afresh per item (as the tutorial), validation
and test sets fixed; an encoder without positional encoding scores every set element.
The family's declaration; training code: kvt.experiments.anomaly.
"""

import math
from dataclasses import dataclass

from ..data.facts import FACTS, ImageFacts, holdout_size
from .base import (
    AttentionSettings,
    Family,
    Limit,
    TableRecipe,
    TinyCase,
    Workload,
    axis,
    check_heads,
    eval_runtime_setting,
    group_setting,
    init_setting,
    joint_seeds_setting,
    mem_mb_setting,
    probability_setting,
    runtime_setting,
    seed_setting,
    select_setting,
    setting,
)

TASKS = ("cifar100",)


@dataclass
class AnomalyGrid:
    d_model: list[int] = axis([256], "Model widths.")
    depth: list[int] = axis([4], "Numbers of encoder blocks.")
    heads: list[int] = axis([4], "Numbers of heads (each must divide every d_model).")


@dataclass
class AnomalyConfig(AttentionSettings):
    tasks: list[str] = setting(
        list(TASKS), "Datasets whose images form the sets.", run=False, minItems=1, uniqueItems=True
    )
    grid: AnomalyGrid = setting(AnomalyGrid(), "Hyperparameter grid.", run=False)
    backbone: str = setting(
        "imagenet",
        "ResNet-34 weights of the features: torchvision's ImageNet "
        "weights, or random (a fixed seed; tests and smoke).",
        enum=["imagenet", "random"],
        run=False,
    )
    image_size: int = setting(
        224, "Images are resized to this size for the ResNet.", minimum=8, run=False
    )
    feature_batch: int = setting(256, "Images per batch of the feature rule.", minimum=1, run=False)
    train_images: int | None = setting(
        None,
        "Training images used (a seeded subset, taken before the features; null: all "
        f"{FACTS[TASKS[0]].train:,}).",
        minimum=1,
        run=False,
    )
    test_images: int | None = setting(
        None, f"Test images used (null: all {FACTS[TASKS[0]].test:,}).", minimum=1, run=False
    )
    set_size: int = setting(10, "Images per set (one of them the anomaly).", minimum=3)
    val_fraction: float = setting(
        0.1,
        "Class-balanced share of the training images held out for validation.",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    split_seed: int = seed_setting(
        0,
        "Seed of the hold-out and of the fixed sets (validation, test; "
        "training with resample_train false).",
    )
    resample_train: bool = setting(
        True,
        "Draw each training set afresh every time it is read, "
        "as UvA tutorial 6 (per epoch one set per training image, its "
        "odd one; the rest from a generator seeded by (seed, step)); "
        "false: one fixed set per image, reused every epoch.",
    )
    epochs: int = setting(100, "Training epochs.", minimum=1)
    batch_size: int = setting(64, "Sets per training batch.", minimum=1)
    eval_batch: int = setting(500, "Sets per validation/test batch.", minimum=1)
    lr: float = setting(5e-4, "Peak Adam learning rate.", exclusiveMinimum=0)
    warmup_steps: int = setting(
        100,
        "Warm-up steps: the cosine's factor is multiplied by "
        "step / warmup_steps until then (UvA tutorial 6's "
        "CosineWarmupScheduler).",
        minimum=0,
    )
    grad_clip: float = setting(2.0, "Gradient-norm clip (0 = none).", minimum=0)
    dropout: float = probability_setting(0.1, "Dropout in the blocks and the output net.")
    input_dropout: float = probability_setting(0.1, "Dropout on the input features.")
    select: str = select_setting()
    init: str = init_setting("fused")
    runtime: int = runtime_setting(240)
    mem_mb: int = mem_mb_setting(8000)
    eval_runtime: int = eval_runtime_setting(20)
    group: bool = group_setting()
    joint_seeds: bool = joint_seeds_setting()


def check(section: dict) -> None:
    check_heads("anomaly.grid", section["grid"])


def set_parts(images: ImageFacts, val_fraction: float) -> dict[str, list[int]]:
    """Images of each class in the parts sets are drawn from: the training images less the
    class-balanced hold-out (train), the hold-out (val), the test images (test)."""
    val = [holdout_size(n, val_fraction) for n in images.train_per_class]
    return {
        "train": [n - v for n, v in zip(images.train_per_class, val)],
        "val": val,
        "test": list(images.test_per_class),
    }


def set_limits(section: dict, task: str, parts: dict, how: str) -> list[Limit]:
    """set_size - 1 images of one class in every part, and a batch of at most the training sets
    (one per image of the training part); `how`: whence the counts, for the message."""
    out = []
    for part, counts in parts.items():
        smallest = min((c for c in counts if c), default=0)  # an absent class is never drawn
        out.append(
            Limit(
                "anomaly.set_size",
                section["set_size"],
                task,
                smallest + 1,
                f"a set holds set_size - 1 images of one class; the smallest class of the {part} "
                f"part has {smallest} ({how})",
            )
        )
    out.append(
        Limit(
            "anomaly.batch_size",
            section["batch_size"],
            task,
            sum(parts["train"]),
            f"one training set per image of the training part, {sum(parts['train'])} ({how}); "
            "the last partial batch is dropped",
        )
    )
    return out


def limits(section: dict, facts: dict) -> list[Limit]:
    """The subsets within the splits, and the sets within the parts they are drawn from. With
    train_images or test_images (a seeded subset) the classes' counts are known only to the
    feature rule, which checks them exactly (subset_limits) before the ResNet pass; here, bounds
    that hold for any subset: set_size against the whole split's classes (a subset has no more),
    batch_size against the fewest training sets a subset of train_images can leave."""
    out = []
    for task in section["tasks"]:
        data, f = facts[task], section["val_fraction"]
        out += [
            Limit(
                f"anomaly.{key}",
                section[key],
                task,
                n,
                f"a subset of the {n} {split} images of {data.title}",
            )
            for key, split, n in (
                ("train_images", "training", data.train),
                ("test_images", "test", data.test),
            )
        ]
        how = f"{data.title} with val_fraction={f}"
        if section["train_images"] is not None or section["test_images"] is not None:
            how += "; at most, in the whole splits: the feature rule checks the subsets"
        parts = set_parts(data, f)
        own = set_limits(section, task, parts, how)
        m = section["train_images"]
        if m is not None:  # the hold-out rounds each class's share by at most half an image
            fewest = max(0, math.ceil(min(m, data.train) * (1 - f) - data.classes / 2 - 1e-9))
            own[-1] = Limit(
                "anomaly.batch_size",
                section["batch_size"],
                task,
                fewest,
                f"one training set per image of the training part: at least {fewest} of "
                f"train_images={m} less the val_fraction={f} hold-out (rounded per class); the "
                "last partial batch is dropped",
            )
        out += own
    return out


def subset_limits(section: dict, task: str, subset: ImageFacts) -> list[Limit]:
    """The exact set limits of the images the feature rule drew (its train_images, test_images
    subsets, counted per class)."""
    how = f"the feature rule's {subset.train} training and {subset.test} test images of {task}"
    return set_limits(section, task, set_parts(subset, section["val_fraction"]), how)


def workload(hp: dict, section: dict) -> Workload:
    """One set per training image (kvt.data.facts), each of set_size feature vectors; the
    ResNet-34 feature pass, done once for all runs, is not counted."""
    sets = (section["train_images"] or FACTS[hp["task"]].train) * (1 - hp["val_fraction"])
    return Workload(
        tokens=hp["epochs"] * sets * hp["set_size"], seq=hp["set_size"], mlp=2, blocks=hp["depth"]
    )


FAMILY = Family(
    name="anomaly",
    config=AnomalyConfig,
    tasks=TASKS,
    grid_tags={"d_model": "d", "depth": "l", "heads": "h"},
    module="kvt.experiments.anomaly",
    table=TableRecipe(
        metric="test_acc",
        label="test accuracy (odd one found)",
        task_label="dataset",
        cfg_label="configuration (d: width, l: depth, h: heads)",
    ),
    doc="Set anomaly detection on CIFAR-100 features (docs/protocol.md): encoder without positional "
    "encoding, Adam with warm-up + cosine, weights selected on validation accuracy.",
    check=check,
    limits=limits,
    order=2,
    inputs={"features": "anomaly/features/{task}.pt"},
    # fake features (its runtime's fixture_inputs): 1,080 train sets, batch 64 -> 16 steps, 2 epochs
    tiny=TinyCase(
        {
            "grid": {"d_model": [16], "depth": [1], "heads": [2]},
            "epochs": 2,
            "batch_size": 64,
            "warmup_steps": 3,
        },
        "cifar100",
    ),
    bench_cases=(("cifar100", None),),
    workload=workload,
)
