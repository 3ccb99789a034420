"""Vision: a small ViT on MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 (docs/protocol.md), plus
scikit-learn's 8x8 digits (beyond the paper: real images that ship with a package, for CPUs
without network). The family's declaration; training code: kvt.experiments.vision.

Each dataset (a task) has its own settings: its grid, epochs, batch size and learning rate.
"""

from dataclasses import dataclass

from ..data.facts import FACTS
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
    joint_seeds_setting,
    mem_mb_setting,
    pos_dim_setting,
    runtime_setting,
    scale_setting,
    seed_setting,
    select_setting,
    setting,
)

TASKS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits")
_DIGITS = FACTS["digits"]


@dataclass
class ViTGrid:
    d_model: list[int] = axis([128], "Model widths.")
    depth: list[int] = axis([2, 4], "Numbers of blocks.")
    heads: list[int] = axis([2, 4], "Numbers of heads (each must divide every d_model).")


@dataclass
class ViTTask:
    grid: ViTGrid = setting(ViTGrid(), "Hyperparameter grid of this dataset.", run=False)
    epochs: int = setting(40, "Training epochs.", minimum=1)
    batch_size: int = setting(128, "Training batch size (last partial batch dropped).", minimum=1)
    eval_batch: int = setting(1000, "Batch size of validation and test.", minimum=1)
    lr: float = setting(1e-3, "AdamW learning rate (constant).", exclusiveMinimum=0)
    weight_decay: float = setting(0.01, "AdamW weight decay.", minimum=0)
    val_size: int = setting(5000, "Images held out of the training set for validation.", minimum=1)
    train_size: int | None = setting(
        None, "Training images (a seeded subset; null: all the rest).", minimum=1
    )
    test_size: int | None = setting(None, "Test images (a seeded subset; null: all).", minimum=1)
    val_per_epoch: int = setting(
        2,
        "Validations per epoch, evenly spaced (the reference's "
        "Lightning val_check_interval 0.5: 2); the weights tested are "
        "the best of these.",
        minimum=1,
    )
    norm_stats: str = setting(
        "reference",
        "Normalisation mean/std: reference (the reference "
        "code's: MNIST's for Fashion-MNIST, CIFAR-10's for CIFAR-100) or "
        "own (the dataset's own training-set statistics).",
        enum=["reference", "own"],
    )
    runtime: int = runtime_setting(120)
    mem_mb: int = mem_mb_setting(8000)


def _mnist_like() -> ViTTask:
    return ViTTask(
        grid=ViTGrid(d_model=[256, 512], depth=[4], heads=[2, 4]),
        epochs=20,
        batch_size=200,
        lr=1e-4,
    )


@dataclass
class VisionConfig(AttentionSettings):
    tasks: list[str] = setting(
        ["mnist", "fashion_mnist", "cifar10", "cifar100"],
        "Datasets to run (digits: beyond the paper, needs no files).",
        run=False,
        minItems=1,
        uniqueItems=True,
    )
    split_seed: int = seed_setting(
        0,
        "Seed of the one train/val split (and test subsets), shared by "
        "every run so all are scored on the same images.",
    )
    select: str = select_setting()
    scale: str = scale_setting("model")
    pos_dim: int = pos_dim_setting(50)
    eval_runtime: int = eval_runtime_setting(20)
    group: bool = group_setting()
    joint_seeds: bool = joint_seeds_setting()
    mnist: ViTTask = setting(_mnist_like(), "MNIST settings (docs/protocol.md).")
    fashion_mnist: ViTTask = setting(_mnist_like(), "Fashion-MNIST settings (docs/protocol.md).")
    cifar10: ViTTask = setting(ViTTask(epochs=40), "CIFAR-10 settings (docs/protocol.md).")
    cifar100: ViTTask = setting(ViTTask(epochs=50), "CIFAR-100 settings (docs/protocol.md).")
    digits: ViTTask = setting(
        ViTTask(
            grid=ViTGrid(d_model=[64], depth=[2], heads=[4]),
            epochs=30,
            batch_size=64,
            eval_batch=512,
            val_size=180,
            runtime=10,
            mem_mb=2000,
        ),
        f"scikit-learn digits ({_DIGITS.train + _DIGITS.test:,} 8x8 images; {_DIGITS.test} test, "
        "val_size val).",
    )


def check(section: dict) -> None:
    for task in section["tasks"]:
        check_heads(f"vision.{task}.grid", section[task]["grid"])


def train_images(s: dict, train_split: int) -> int:
    """Training images of a run: train_size, or the training split less the validation images."""
    return s["train_size"] if s["train_size"] is not None else train_split - s["val_size"]


def limits(section: dict, facts: dict) -> list[Limit]:
    """Per task: validation, training and test images within the dataset's splits, and a batch
    within the training images (the last partial batch is dropped)."""
    out = []
    for task in section["tasks"]:
        s, data, where = section[task], facts[task], f"vision.{task}"
        n = data.train
        rest = n - s["val_size"]  # what remains to train on
        out += [
            Limit(
                f"{where}.val_size",
                s["val_size"],
                task,
                n - 1,
                f"held out of the {n} training images of {data.title}, leaving at least one to "
                "train on",
            ),
            Limit(
                f"{where}.test_size",
                s["test_size"],
                task,
                data.test,
                f"drawn from the {data.test} test images of {data.title}",
            ),
        ]
        if rest > 0:  # else val_size is refused, and nothing is left to bound the rest by
            run_images = min(train_images(s, n), rest)
            out += [
                Limit(
                    f"{where}.train_size",
                    s["train_size"],
                    task,
                    rest,
                    f"drawn from the {n} training images of {data.title} less "
                    f"val_size={s['val_size']}",
                ),
                Limit(
                    f"{where}.batch_size",
                    s["batch_size"],
                    task,
                    run_images,
                    f"a run's {run_images} training images (train_size, or the {n} of "
                    f"{data.title} less val_size): the last partial batch is dropped, so a "
                    "larger batch makes no step",
                ),
            ]
    return out


# Tokens an image becomes, for cost estimates (every dataset is cut into 4 x 4 patches, plus the
# class token).
TOKENS = 17


def workload(hp: dict, section: dict) -> Workload:
    images = train_images(hp, FACTS[hp["task"]].train)
    return Workload(tokens=hp["epochs"] * images * TOKENS, seq=TOKENS, mlp=1, blocks=hp["depth"])


FAMILY = Family(
    name="vision",
    config=VisionConfig,
    tasks=TASKS,
    grid_tags={"d_model": "d", "depth": "l", "heads": "h"},
    module="kvt.experiments.vision",
    table=TableRecipe(
        metric="test_acc",
        label="top-1 test accuracy",
        task_label="dataset",
        cfg_label="configuration (d: width, l: depth, h: heads)",
        model_keys=("task",),
        extras=("figures/vision/attention_{task}.png",),
    ),
    doc="Vision (docs/protocol.md): a pre-norm ViT per dataset; AdamW, constant learning rate, "
    "weights selected on validation accuracy.",
    check=check,
    limits=limits,
    workload=workload,
    per_task=True,
    order=1,
    inputs={"data": "data/{task}.json"},
    # CIFAR-10 fixture (augmented): 400 train images, batch 50 -> 8 steps, 2 epochs
    tiny=TinyCase(
        {
            "cifar10": {
                "grid": {"d_model": [16], "depth": [1], "heads": [2]},
                "epochs": 2,
                "batch_size": 50,
                "eval_batch": 100,
                "val_size": 100,
                "train_size": 400,
                "test_size": 100,
            }
        },
        "cifar10",
    ),
    bench_cases=(("mnist", None), ("cifar10", None)),
    layer_shapes=(
        {"batch": 128, "heads": 2, "n": 17, "d_head": 64, "pos_dim": 50, "scale": "model"},
    ),
)
