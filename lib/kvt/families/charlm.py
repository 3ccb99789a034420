"""Character-level language model on Tiny Shakespeare with a decoder-only GPT (docs/protocol.md):
the family's declaration; training code: kvt.experiments.charlm.

It trains for a number of iterations (AdamW, constant learning rate) and is scored by its loss on
the validation text (Tiny Shakespeare has no test split; the paper reports validation loss after
the last iteration). In the report it is one half of the paper's NLP group (with translation).
"""

from dataclasses import dataclass

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
    pos_per_head_setting,
    probability_setting,
    runtime_setting,
    scale_setting,
    setting,
)

TASK = "shakespeare"  # the task, and the dataset of its data rule
TASKS = (TASK,)


@dataclass
class CharLMGrid:
    d_model: list[int] = axis([192], "Model widths.")
    depth: list[int] = axis([6], "Numbers of blocks.")
    heads: list[int] = axis([3], "Numbers of heads (each must divide every d_model).")


@dataclass
class CharLMTask(AttentionSettings):
    grid: CharLMGrid = setting(CharLMGrid(), "Hyperparameter grid.", run=False)
    block: int = setting(64, "Context length in characters.", minimum=2)
    iterations: int = setting(10_000, "Training iterations (optimizer steps).", minimum=1)
    batch_size: int = setting(64, "Blocks per training batch.", minimum=1)
    lr: float = setting(5e-4, "AdamW learning rate (constant).", exclusiveMinimum=0)
    weight_decay: float = setting(
        0.01, "AdamW weight decay (PyTorch's default, as the reference).", minimum=0
    )
    dropout: float = probability_setting(
        0.2,
        "Dropout of the attention weights, the attention output and the "
        "feed-forward output (the reference notebook's sites).",
    )
    val_every: int = setting(
        200, "Validate every this many iterations (and at the last).", minimum=1
    )
    eval_batches: int = setting(
        200,
        "Batches of the fixed validation set (the same text for every variant and seed).",
        minimum=1,
    )
    sample_chars: int = setting(
        500, "Characters generated per run by the eval job (sample.txt).", minimum=0
    )
    select: str = setting(
        "last",
        "Weights scored: last (the paper's number after the last "
        "iteration; the validation text is also the score's text) or best "
        "(lowest validation loss).",
        enum=["best", "last"],
    )
    scale: str = scale_setting("model")
    pos_dim: int = pos_dim_setting(20)
    pos_per_head: bool = pos_per_head_setting(
        True, "One map_pos per head (the char-LM reference) instead of one per layer."
    )
    runtime: int = runtime_setting(240)
    mem_mb: int = mem_mb_setting(8000)


@dataclass
class CharLMConfig:
    tasks: list[str] = setting(
        list(TASKS), "Tasks to run.", run=False, minItems=1, uniqueItems=True
    )
    shakespeare: CharLMTask = setting(
        CharLMTask(), "Character-level Tiny Shakespeare (docs/protocol.md)."
    )
    eval_runtime: int = eval_runtime_setting(20)
    group: bool = group_setting()
    joint_seeds: bool = joint_seeds_setting()


def check(section: dict) -> None:
    for task in section["tasks"]:
        check_heads(f"charlm.{task}.grid", section[task]["grid"])


def limits(section: dict, facts: dict) -> list[Limit]:
    """A block and its next character (the target) fit in the smaller split, the validation text
    (training blocks, the fixed validation batches and the eval job read it)."""
    out = []
    for task in section["tasks"]:
        text = facts[task]
        out.append(
            Limit(
                f"charlm.{task}.block",
                section[task]["block"],
                task,
                text.val_chars - 1,
                f"block + 1 characters must fit in the validation text of {text.title}, "
                f"{text.val_chars} of its {text.characters} characters",
            )
        )
    return out


def workload(hp: dict, section: dict) -> Workload:
    """iterations x batch x block characters."""
    return Workload(
        tokens=hp["iterations"] * hp["batch_size"] * hp["block"],
        seq=hp["block"],
        mlp=4,
        blocks=hp["depth"],
    )


FAMILY = Family(
    name="charlm",
    config=CharLMConfig,
    tasks=TASKS,
    grid_tags={"d_model": "d", "depth": "l", "heads": "h"},
    module="kvt.experiments.charlm",
    table=TableRecipe(
        metric="test_loss",
        label="validation loss (nats/char)",
        task_metrics={
            TASK: (
                ("test_loss", "validation loss (nats/char)"),
                ("test_bpc", "validation bits per character"),
            )
        },
        reference="kvt.report.paper:nlp_cell",
        reference_note=(
            "Reference (gpt_dev_pos.ipynb): char-LM validation loss at step 9999, the mean of its "
            "two runs per variant (d 192, 6 layers, 3 heads, 10,000 iterations)."
        ),
        bounded=False,
        score_figure="score",
        mean_row=False,
        lower_better=("test_loss", "test_bpc"),
        cfg_label="configuration (d: width, l: depth, h: heads)",
        model_keys=("task",),
        group="nlp",
    ),
    doc="Character-level GPT on Tiny Shakespeare (docs/protocol.md): AdamW, constant learning "
    "rate, a number of iterations, scored by the validation loss.",
    check=check,
    limits=limits,
    per_task=True,
    order=3,
    inputs={"data": "data/{task}.json"},
    eval_outputs={"sample": "sample.txt"},
    # fixture play: 16-character blocks, 12 iterations, validated every 4 on 3 fixed batches
    tiny=TinyCase(
        {
            "shakespeare": {
                "grid": {"d_model": [16], "depth": [1], "heads": [2]},
                "block": 16,
                "iterations": 12,
                "batch_size": 8,
                "val_every": 4,
                "eval_batches": 3,
                "sample_chars": 50,
            }
        },
        "shakespeare",
    ),
    bench_cases=((TASK, None),),
    layer_shapes=(
        {
            "batch": 64,
            "heads": 3,
            "n": 64,
            "d_head": 64,
            "pos_dim": 20,
            "causal": True,
            "scale": "model",
        },
    ),
    workload=workload,
)
