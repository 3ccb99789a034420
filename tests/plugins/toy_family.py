"""A toy experiment declared outside the package, for the plugin test (tests/test_plugins.py):
registered only when KVT_PLUGINS names this module (and tests/plugins is on the path). Echo: a
per-token classifier copies random tokens. Its runtime: toy_experiment.py."""

from dataclasses import dataclass

from kvt.families.base import (
    AttentionSettings,
    Family,
    TableRecipe,
    TinyCase,
    Workload,
    axis,
    eval_runtime_setting,
    group_setting,
    joint_seeds_setting,
    mem_mb_setting,
    pos_dim_setting,
    runtime_setting,
    select_setting,
    setting,
)

TASKS = ("echo",)


@dataclass
class ToyGrid:
    d_model: list[int] = axis([16], "Model widths.")
    depth: list[int] = axis([1], "Numbers of blocks.")
    heads: list[int] = axis([2], "Numbers of heads.")


@dataclass
class ToyConfig(AttentionSettings):
    tasks: list[str] = setting(
        list(TASKS), "Tasks to run.", run=False, minItems=1, uniqueItems=True
    )
    grid: ToyGrid = setting(ToyGrid(), "Hyperparameter grid.", run=False)
    seq_len: int = setting(8, "Tokens per sequence.", minimum=1)
    train_size: int = setting(256, "Training sequences.", minimum=1)
    val_size: int = setting(64, "Validation sequences.", minimum=1)
    test_size: int = setting(64, "Test sequences.", minimum=1)
    epochs: int = setting(2, "Training epochs.", minimum=1)
    val_per_epoch: int = setting(4, "Validations per epoch (each also writes last.pt).", minimum=1)
    batch_size: int = setting(32, "Sequences per batch.", minimum=1)
    lr: float = setting(1e-3, "Adam learning rate.", exclusiveMinimum=0)
    dropout: float = setting(0.0, "Dropout.", minimum=0, maximum=1)
    select: str = select_setting()
    pos_dim: int = pos_dim_setting(4)
    runtime: int = runtime_setting(5)
    mem_mb: int = mem_mb_setting(500)
    eval_runtime: int = eval_runtime_setting(5)
    group: bool = group_setting()
    joint_seeds: bool = joint_seeds_setting()


def workload(hp: dict, section: dict) -> Workload:
    return Workload(
        tokens=hp["epochs"] * hp["train_size"] * hp["seq_len"],
        seq=hp["seq_len"],
        mlp=2,
        blocks=hp["depth"],
    )


FAMILY = Family(
    name="toy",
    config=ToyConfig,
    tasks=TASKS,
    grid_tags={"d_model": "d", "depth": "l", "heads": "h"},
    module="toy_experiment",
    table=TableRecipe(metric="test_acc", label="per-token accuracy"),
    doc="A toy experiment from the test suite (tests/plugins).",
    order=99,
    workload=workload,
    tiny=TinyCase({}, "echo"),
    bench_cases=(("echo", None),),
)
