"""The task-family contract, torch-free (the DAG is built from it without importing torch).

A family declares, once, in a module of this package:
- its config section as a dataclass (`Config`): field names, types, defaults and descriptions.
  The JSON Schema of the section, the defaults, the per-run hyperparameters and the test
  factories all derive from it, so a hyperparameter is written in exactly one place;
- its task names, its grid (the axes of a configuration name such as `n64-d64-l2-h2`), the
  runtime module that trains it (`module`: its EXPERIMENT, kvt.experiments.base's typed
  contract), and its table recipe (which metric, how labelled, which reference numbers).
  Its jobs' code hash follows the imports of both (kvt.config.family_code_hashes).

Field metadata (see `setting`): `doc` (description), `run` (False: not a hyperparameter of a run,
e.g. the task list or cluster resources), and JSON Schema keywords (`enum`, `minimum`, ...).
"""

import dataclasses
import importlib
import itertools
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Callable

from ..seeds import SEED_MAX

# the settings every family shares are declared once, in kvt.settings (re-exported here)
from ..settings import (  # noqa: F401
    AttentionSettings,
    init_setting,
    pos_dim_setting,
    pos_form_setting,
    pos_per_head_setting,
    probability_setting,
    scale_setting,
    sdpa_setting,
    seed_setting,
    setting,
)


class ConfigError(ValueError):
    """An invalid configuration; the message names the key and the problem."""


# -- dataclass -> JSON Schema ------------------------------------------------------------------
# The file every family's eval job writes beside test.json (its output `probe`): what the run's
# attention layers do on the first test batches (kvt.probe), which the analyses gather
# (kvt.report.attention_terms).
ATTENTION_FILE = "attention.json"
# A joint_seeds job (every seed of a run trained in one job) has this name in place of seed<N>
# in its log and benchmark paths.
JOINT_NAME = "seeds"
# Every section may replace the top-level seeds with its own (e.g. more seeds where runs are
# cheap); not a field of the families' dataclasses, as no run receives it (a run has its seed).
SEEDS_KEY = "seeds"
SEEDS_SCHEMA = {
    "anyOf": [
        {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 0, "maximum": SEED_MAX},
        },
        {"type": "null"},
    ],
    "default": None,
    "description": "Seeds of this family's runs; null: the top-level seeds.",
}
_SCALAR = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _type_schema(tp, default) -> dict:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        kinds = [_type_schema(a, None) for a in args if a is not type(None)]
        out = dict(kinds[0]) if len(kinds) == 1 else {"anyOf": kinds}
        if type(None) in args:
            out = {"anyOf": [out, {"type": "null"}]}
        return out
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], None)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], None)}
    if dataclasses.is_dataclass(tp):
        return schema_of(tp, default)
    if tp is float:
        return {"type": "number"}
    return {"type": _SCALAR[tp]}


def schema_of(cls, instance=None) -> dict:
    """JSON Schema (draft 2020-12) of a config dataclass, every property with its description and
    its default (taken from `instance` when given: per-task defaults differ by task)."""
    instance = cls() if instance is None else instance
    hints = typing.get_type_hints(cls)
    props = {}
    for f in fields(cls):
        value = getattr(instance, f.name)
        prop = _type_schema(hints[f.name], value)
        extra = dict(f.metadata.get("schema", {}))
        items = extra.pop("items", None)
        if items:
            prop["items"] = {**prop.get("items", {}), **items}
        if "enum" in extra and "type" in prop and prop.get("type") != "array":
            prop.pop("type")
        prop.update(extra)
        prop["description"] = f.metadata.get("doc", "")
        prop["default"] = to_plain(value)
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def to_plain(value):
    """Dataclass instances (nested) -> dicts; everything else deep-copied."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def run_fields(cls) -> list[str]:
    """The fields of a config dataclass that a run receives (metadata run=True)."""
    return [f.name for f in fields(cls) if f.metadata.get("run", True)]


def grid_name(point: dict, tags: dict) -> str:
    """'n64-d256-l2-h4' from {seq_len: 64, d_model: 256, ...} and {seq_len: 'n', ...}."""
    return "-".join(f"{tags[k]}{point[k]}" for k in tags)


# -- the family ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableRecipe:
    """How the report turns a family's runs into its tables and figures."""

    metric: str  # summary column of the main table (test_acc, test_bleu, ...)
    label: str  # what the metric is, for captions and axes
    task_label: str = "task"
    # tasks scored otherwise: task -> ((summary column, label), ...), a table row per pair
    task_metrics: dict = field(default_factory=dict)
    # (task, attention, metric) -> (mean, std or None) the paper reports, or None; its mean row
    # ((attention, tasks) -> mean or None). Either a function or its name, "module:function"
    # (e.g. "kvt.report.paper:synthetic_cell"), imported when the report asks: a declaration
    # names the report's reference numbers without importing the report.
    reference: Callable[[str, str, str], tuple[float, float | None] | None] | str | None = None
    reference_mean: Callable[[str, list], float | None] | str | None = None
    reference_note: str = ""
    bounded: bool = True  # metric in [0, 1] (axis limits)
    score_figure: str = "accuracy"  # name of the per-configuration figure of the metric
    cfg_label: str = "configuration"  # x-axis label of that figure (what the name's tags mean)
    extras: tuple[str, ...] = ()  # further outputs per task, relative to results ({task})
    model_keys: tuple[str, ...] = ()  # columns besides cfg that change the model (e.g. task)
    name_only: tuple[str, ...] = ()  # grid axes left out of the parameter table (no effect on it)
    mean_row: bool = True  # a mean over tasks (False where the tasks' metrics differ)
    lower_better: tuple[str, ...] = ()  # metrics where lower is better (losses)
    task_extras: dict = field(default_factory=dict)  # task -> outputs only that task has
    # The report's group: families of one group share their tables and figures (tables/<group>.*,
    # figures/<group>/), as the paper groups char-LM and translation under NLP; "": the family's
    # own name.
    group: str = ""

    def metrics(self, task: str) -> tuple[tuple[str, str], ...]:
        """((summary column, label), ...) that score `task`, the first one its main metric."""
        return self.task_metrics.get(task, ((self.metric, self.label),))

    def reference_of(self, task: str, attention: str, metric: str):
        """The paper's (mean, std or None) of a task's metric for a variant, or None."""
        fn = _function(self.reference)
        return fn(task, attention, metric) if fn else None

    def reference_mean_of(self, attention: str, tasks: list) -> float | None:
        """The paper's mean over `tasks` for a variant, or None."""
        fn = _function(self.reference_mean)
        return fn(attention, tasks) if fn else None


def _function(ref):
    """A function, or the function a "module:function" name names (None stays None)."""
    if isinstance(ref, str):
        module, _, name = ref.partition(":")
        return getattr(importlib.import_module(module), name)
    return ref


@dataclass(frozen=True)
class Workload:
    """What one run's training processes, for a rough cost estimate without torch: `tokens`
    token positions through `blocks` transformer blocks of width d_model (from the hparams), with
    sequences of `seq` tokens and an MLP of `mlp` x d_model."""

    tokens: float
    seq: int
    mlp: float
    blocks: int


def train_flops(hp: dict, work: Workload) -> float:
    """Matmul FLOPs of training one run (forward + backward = 3 x forward): per token and block,
    the input and output projections (4 d^2 with a query projection, qkv and qkv_pos; 3 d^2 for
    the kv variants: kvt.attention_names.projections), the MLP, and the scores and weighted sum
    (2 n d each); 2 FLOPs a multiply-add. Embeddings, heads, norms and evaluation are left out:
    an estimate, within a small factor."""
    from ..attention_names import projections

    d = hp["d_model"]
    proj = projections(hp["attention"]) * d * d
    per_token = 2 * (proj + 2 * work.mlp * d * d) + 4 * work.seq * d
    return 3.0 * work.blocks * per_token * work.tokens


@dataclass(frozen=True)
class Limit:
    """The largest (at_least: the smallest) value of a setting that a dataset allows (kvt.limits
    checks them): the setting's dotted path, its value (None: unset, nothing to check), the
    dataset, the bound (a function of the dataset's facts, kvt.data.facts) and why."""

    setting: str
    value: int | None
    dataset: str
    bound: int
    why: str
    at_least: bool = False

    @property
    def broken(self) -> bool:
        if self.value is None:
            return False
        return self.value < self.bound if self.at_least else self.value > self.bound

    def message(self) -> str:
        more, most = ("less", "least") if self.at_least else ("more", "most")
        return (
            f"{self.setting}={self.value} is {more} than {self.dataset} allows: at {most} "
            f"{self.bound} ({self.why})"
        )


@dataclass(frozen=True)
class TinyCase:
    """A run of the family that takes seconds on one CPU thread, for the test suite: section
    overrides, its task and attention (its runtime writes the fixture inputs it reads)."""

    section: dict
    task: str
    attention: str = "kv_pos"


@dataclass(frozen=True)
class Family:
    """One task family (see the module docstring). Subclass to override the defaults."""

    name: str
    config: type  # dataclass of the config section
    tasks: tuple[str, ...]  # every task the family knows, in the paper's order
    grid_tags: dict  # grid axis -> tag of the configuration name, in name order
    module: str  # its runtime module, whose EXPERIMENT is a kvt.experiments.base.Experiment (torch)
    table: TableRecipe
    doc: str = ""
    check: Callable[[dict], None] | None = None  # what the schema cannot say; raise ConfigError
    # (section, {dataset: facts}) -> the Limits the data puts on its settings (kvt.data.facts
    # declared, or a data rule's measured facts); torch-free
    limits: Callable[[dict, dict], list[Limit]] | None = None
    per_task: bool = False  # settings per task live in section[task] (a nested dataclass)
    order: int = 0  # position among the families (the paper's order) in lists and the summary
    workload: Callable[[dict, dict], "Workload"] | None = None  # (hparams, section): for estimates
    # The named inputs of its train and eval jobs besides the weights, relative to the results
    # folder ({task}: the run's task), e.g. {"data": "data/{task}.json"} (the data rule's manifest).
    inputs: dict = field(default_factory=dict)
    # The files its eval job writes into a run's folder besides test.json: {name: file name}.
    eval_outputs: dict = field(default_factory=dict)
    tiny: TinyCase | None = None  # its test case (tests/conftest.py derives TINY from it)
    # benchmark cases (kvt.bench.step): (task, configuration or None: the task's first)
    bench_cases: tuple[tuple[str, str | None], ...] = ()
    # its attention layers' shapes at the paper's settings (kvt.bench.layer.Shape's fields but the
    # name: batch, heads, n, d_head, pos_dim, causal, context, scale)
    layer_shapes: tuple[dict, ...] = ()

    @property
    def eval_files(self) -> dict:
        """Every file its eval job writes into a run's folder besides test.json: {name: file
        name}, its own eval_outputs and the attention probe's, which every family writes."""
        return {**self.eval_outputs, "probe": ATTENTION_FILE}

    @property
    def report_group(self) -> str:
        """The name of the report's group (tables, figures) this family belongs to."""
        return self.table.group or self.name

    # The section as configured: the dataclass's defaults, as the schema fills them in.
    def defaults(self) -> dict:
        return {**to_plain(self.config()), SEEDS_KEY: None}

    def schema(self) -> dict:
        out = schema_of(self.config)
        out["description"] = self.doc
        out["properties"]["tasks"]["items"]["enum"] = list(self.tasks)
        out["properties"][SEEDS_KEY] = SEEDS_SCHEMA
        return out

    def settings(self, section: dict, task: str) -> dict:
        """The settings of one task: the section's run fields, with the task's own settings
        (per_task families) overlaid."""
        out = {
            k: section[k] for k in run_fields(self.config) if k in section and k not in self.tasks
        }
        if self.per_task:
            out.update(section[task])
        return out

    def resources(self, section: dict, task: str) -> dict:
        """runtime (minutes) and mem_mb of one train job of `task`."""
        src = section[task] if self.per_task else section
        return {"runtime": src["runtime"], "mem_mb": src["mem_mb"]}

    def configs(self, section: dict, task: str) -> dict[str, dict]:
        """{configuration name: grid point} of one task."""
        grid = (section[task] if self.per_task else section)["grid"]
        out = {}
        for values in itertools.product(*(grid[k] for k in self.grid_tags)):
            point = dict(zip(self.grid_tags, values))
            out[grid_name(point, self.grid_tags)] = point
        return out

    def hparams(self, section: dict, task: str, cfg: str, attention: str, seed) -> dict:
        """Everything one run needs, as its train job receives it (and run.json records)."""
        configs = self.configs(section, task)
        if cfg not in configs:
            raise ConfigError(
                f"unknown {self.name} configuration {cfg!r} of task {task!r}; "
                f"known: {', '.join(configs)}"
            )
        settings = {
            k: v
            for k, v in self.settings(section, task).items()
            if k not in ("grid", "runtime", "mem_mb")
        }
        return {
            "family": self.name,
            "task": task,
            "attention": attention,
            "seed": int(seed),
            "cfg": cfg,
            **configs[cfg],
            **settings,
        }

    def seeds(self, section: dict, seeds: list[int]) -> list[int]:
        """The section's own seeds where it sets them, else `seeds` (the top level's)."""
        own = section.get(SEEDS_KEY)
        return list(seeds) if own is None else list(own)

    def runs(self, section: dict, attentions, seeds) -> list[tuple[str, str, str, int]]:
        """(task, cfg, attention, seed) of every run the section asks for (`seeds`: the top
        level's, which the section's own replace)."""
        return [
            (t, c, a, s)
            for t in section["tasks"]
            for c in self.configs(section, t)
            for a in attentions
            for s in self.seeds(section, seeds)
        ]


@dataclass(frozen=True)
class ReportGroup:
    """What the report needs of one group of families (see TableRecipe.group), in the shape of a
    family: its name, members, tasks (each of one member), grid tags and merged table recipe."""

    name: str
    members: tuple[str, ...]
    tasks: tuple[str, ...]
    grid_tags: dict
    table: TableRecipe


def report_group(name: str, members: list[Family]) -> ReportGroup:
    """The group `name` of `members` (in the families' order). One member: its own recipe.
    Several: per task the metrics and reference numbers of the task's family, one mean row no
    longer (the members' metrics differ), their reference notes joined."""
    tasks = [t for fam in members for t in fam.tasks]
    if len(set(tasks)) != len(tasks):
        raise ValueError(
            f"report group {name!r}: its families {[f.name for f in members]} share "
            "task names; a group's tables need each task once"
        )
    first = members[0].table
    if len(members) == 1:
        return ReportGroup(
            name, (members[0].name,), tuple(tasks), dict(members[0].grid_tags), first
        )
    figures = {fam.table.score_figure for fam in members}
    if len(figures) > 1:
        raise ValueError(
            f"report group {name!r}: its families name their score figure "
            f"differently ({sorted(figures)}); they share figures/{name}/"
        )
    owner = {t: fam.table for fam in members for t in fam.tasks}

    def union(attr):
        return tuple(dict.fromkeys(x for fam in members for x in getattr(fam.table, attr)))

    table = dataclasses.replace(
        first,
        group=name,
        task_metrics={t: owner[t].metrics(t) for t in tasks},
        reference=lambda task, attention, metric: (
            owner[task].reference_of(task, attention, metric) if task in owner else None
        ),
        reference_mean=None,
        mean_row=False,
        reference_note=" ".join(
            fam.table.reference_note for fam in members if fam.table.reference_note
        ),
        bounded=all(fam.table.bounded for fam in members),
        extras=union("extras"),
        model_keys=union("model_keys"),
        name_only=union("name_only"),
        lower_better=union("lower_better"),
        task_extras={t: x for fam in members for t, x in fam.table.task_extras.items()},
    )
    grid_tags = {k: v for fam in members for k, v in fam.grid_tags.items()}
    return ReportGroup(name, tuple(fam.name for fam in members), tuple(tasks), grid_tags, table)


# -- settings most families share (one description each; defaults per family) ------------------
def axis(default: list[int], doc: str):
    """A grid axis: a non-empty list of distinct positive integers."""
    return setting(default, doc, minItems=1, uniqueItems=True, items={"minimum": 1})


def select_setting():
    return setting(
        "best",
        "Weights tested: best on the validation metric, or last (the "
        "reference's choice for the synthetic tasks).",
        enum=["best", "last"],
    )


def eval_runtime_setting(default: int):
    return setting(
        default, "Minutes an eval job may take (cluster executors).", run=False, minimum=1
    )


def group_setting():
    return setting(
        False,
        "On a cluster, submit the runs of one configuration (every variant and "
        "seed, train then eval) as one job, a Snakemake group, instead of one job per "
        "run: the scheduler sees fewer, longer jobs. Needs the profile's local gpu scope "
        "(profiles/slurm); inactive in local runs.",
        run=False,
    )


def joint_seeds_setting():
    return setting(
        False,
        "Train every seed of a configuration and variant in one job, one "
        "process, step by step in turn (on a GPU each on its own CUDA stream), and test "
        "them in one job. Each run's files and numbers are exactly those of its own "
        "jobs; the seeds share the jobs' start-up and the device.",
        run=False,
    )


def runtime_setting(default: int):
    return setting(
        default, "Minutes a train job may take (cluster executors).", run=False, minimum=1
    )


def mem_mb_setting(default: int):
    return setting(
        default, "Memory of a train job in MB (cluster executors).", run=False, minimum=100
    )


def check_heads(where: str, grid: dict) -> None:
    """Every width of the grid must split into every head count."""
    for d in grid["d_model"]:
        for h in grid["heads"]:
            if d % h:
                raise ConfigError(f"{where}: d_model={d} is not divisible by heads={h}")
