"""Human Numbers, the reference's sixth experiment (numbers_pos.ipynb): a causal word-level LM on
fastai's Human Numbers, the family's declaration; training code: kvt.experiments.human_numbers.

The notebook's model (4 layers, d 64, 8 heads, its normalised residuals, tied embeddings, its
three dropouts) is trained with fastai's fit_one_cycle for 15 epochs (kvt.trainer's one_cycle:
AdamW as fastai's Adam, its momentum cycle, no weight decay on norms and biases), over the grid
lr x seq_len, and scored by the next-token accuracy on the validation sequences after the last
epoch (the notebook's printed accuracy; docs/protocol.md). The data is generated, not read: no
data rule (kvt.data.human_numbers).
"""

from dataclasses import dataclass

from .base import (
    AttentionSettings,
    ConfigError,
    Family,
    Limit,
    TableRecipe,
    TinyCase,
    Workload,
    check_heads,
    eval_runtime_setting,
    group_setting,
    init_setting,
    joint_seeds_setting,
    mem_mb_setting,
    probability_setting,
    runtime_setting,
    setting,
)

TASK = "numbers"  # the notebook's which_task
TASKS = (TASK,)
DATASET = "human_numbers"  # its facts (kvt.data.facts)


@dataclass
class HumanNumbersGrid:
    lr: list[float] = setting(
        [0.001, 0.0001],
        "Peak learning rates of the one-cycle schedule.",
        minItems=1,
        uniqueItems=True,
        items={"exclusiveMinimum": 0},
    )
    seq_len: list[int] = setting(
        [16, 32, 64, 128],
        "Sequence lengths in tokens (the stream is cut into non-overlapping sequences).",
        minItems=1,
        uniqueItems=True,
        items={"minimum": 1},
    )


@dataclass
class HumanNumbersConfig(AttentionSettings):
    tasks: list[str] = setting(
        list(TASKS), "Tasks to run.", run=False, minItems=1, uniqueItems=True
    )
    grid: HumanNumbersGrid = setting(
        HumanNumbersGrid(),
        "Hyperparameter grid; every combination is one configuration (2 x 4 in the reference).",
        run=False,
    )
    d_model: int = setting(64, "Model width.", minimum=1)
    depth: int = setting(4, "Number of layers.", minimum=1)
    heads: int = setting(8, "Number of heads (must divide d_model).", minimum=1)
    epochs: int = setting(15, "Training epochs (fit_one_cycle's n_epoch).", minimum=1)
    batch_size: int = setting(
        64, "Sequences per training batch (the last partial batch dropped).", minimum=1
    )
    eval_batch: int = setting(
        256, "Sequences per validation batch (every validation sequence is scored).", minimum=1
    )
    pct_start: float = setting(
        0.25, "Share of the steps over which the rate rises (fit_one_cycle).",
        exclusiveMinimum=0, exclusiveMaximum=1,
    )  # fmt: skip
    div: float = setting(25.0, "The first rate is lr / div (fit_one_cycle).", minimum=1)
    div_final: float = setting(1e5, "The last rate is lr / div_final (fit_one_cycle).", minimum=1)
    moms: list[float] = setting(
        [0.95, 0.85, 0.95],
        "Adam's beta1 at the start, the peak rate and the end (fastai's momentum cycle).",
        minItems=3,
        maxItems=3,
        items={"exclusiveMinimum": 0, "exclusiveMaximum": 1},
    )
    weight_decay: float = setting(
        0.01,
        "Decoupled weight decay (fastai's Adam default), not on biases and LayerNorms "
        "(fastai's wd_bn_bias=False).",
        minimum=0,
    )
    emb_dropout: float = probability_setting(0.1, "Dropout of the embeddings (p_emb).")
    attn_out_dropout: float = probability_setting(
        0.1, "Dropout of the attention output after its projection (the attention's own p)."
    )
    ff_dropout: float = probability_setting(0.2, "Dropout of the feed-forward output (p_ff).")
    val_per_epoch: int = setting(
        1, "Validations per epoch (the notebook's table: one a epoch).", minimum=1
    )
    select: str = setting(
        "last",
        "Weights scored: last (the notebook's accuracy after the last epoch; the validation "
        "sequences are also the score's) or best (highest validation accuracy).",
        enum=["best", "last"],
    )
    init: str = init_setting("xavier")
    runtime: int = runtime_setting(30)
    mem_mb: int = mem_mb_setting(2000)
    eval_runtime: int = eval_runtime_setting(10)
    group: bool = group_setting()
    joint_seeds: bool = joint_seeds_setting()


def check(section: dict) -> None:
    # d_model and heads are single settings here, not grid axes: the shared check on one point
    check_heads("human_numbers", {"d_model": [section["d_model"]], "heads": [section["heads"]]})
    if section["d_model"] % 2:
        raise ConfigError(
            f"human_numbers.d_model={section['d_model']} is odd: its sinusoidal table pairs "
            "a sine and a cosine per frequency"
        )


def limits(section: dict, facts: dict) -> list[Limit]:
    """A training batch fits in the training sequences at the longest sequence length."""
    words = facts[DATASET]
    longest = max(section["grid"]["seq_len"])
    train, _ = words.split_sizes(longest)
    return [
        Limit(
            "human_numbers.batch_size",
            section["batch_size"],
            DATASET,
            train,
            f"{words.title} cut into sequences of seq_len={longest} (the grid's longest) "
            f"gives {train} training sequences",
        )
    ]


def workload(hp: dict, section: dict) -> Workload:
    """epochs x the training batches' tokens."""
    from ..data.facts import FACTS

    train, _ = FACTS[DATASET].split_sizes(hp["seq_len"])
    steps = train // hp["batch_size"]
    return Workload(
        tokens=hp["epochs"] * steps * hp["batch_size"] * hp["seq_len"],
        seq=hp["seq_len"],
        mlp=4,
        blocks=hp["depth"],
    )


FAMILY = Family(
    name="human_numbers",
    config=HumanNumbersConfig,
    tasks=TASKS,
    grid_tags={"lr": "lr", "seq_len": "n"},
    module="kvt.experiments.human_numbers",
    table=TableRecipe(
        metric="test_acc",
        label="next-token validation accuracy",
        reference="kvt.report.paper:numbers_cell",
        reference_note=(
            "Reference (numbers_pos.ipynb): validation accuracy after epoch 15, per "
            "configuration the mean of its 5 runs, then mean and std across the 8 "
            "configurations (lr 1e-3 / 1e-4 x seq_len 16 / 32 / 64 / 128); every "
            "configuration: tables/reproduction.md."
        ),
        cfg_label="configuration (lr: peak learning rate, n: sequence length)",
        name_only=("lr", "seq_len"),
        mean_row=False,
    ),
    doc="Human Numbers (docs/protocol.md): the reference's causal word-level LM, trained with "
    "fastai's one-cycle schedule over lr x seq_len, scored by next-token validation accuracy.",
    check=check,
    limits=limits,
    order=5,
    workload=workload,
    # the real data (generated): sequences of 8 tokens, 2 epochs of 6 batches of 1,024
    tiny=TinyCase(
        {
            "grid": {"lr": [0.003], "seq_len": [8]},
            "d_model": 16,
            "depth": 1,
            "heads": 2,
            "epochs": 2,
            "batch_size": 1024,
            "eval_batch": 2048,
        },
        TASK,
    ),
    bench_cases=((TASK, None),),
    layer_shapes=(
        {
            "batch": 64,
            "heads": 8,
            "n": 64,
            "d_head": 8,
            "pos_dim": 10,
            "causal": True,
            "scale": "head",
        },
    ),
)
