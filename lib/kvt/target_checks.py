"""The wildcards of a target path, checked while Snakemake builds the DAG, before any job.

A rule's wildcard constraints hold its names (tasks, configurations, variants, groups) to the
configured ones, so a path with any other is no rule's output. What a regular expression cannot
say is checked here, by input functions (Snakemake calls them while it builds the DAG; params
functions only when a job runs): a seed within numpy's range, a configuration of the path's own
task, a figure or table of a family whose runs the summary gathers. Each error names the
wildcard, its value and the path. Torch-free.
"""

from .families import ConfigError
from .seeds import SEED_MAX


def check_seed(value: str, path: str) -> int:
    """The seed a `seed` wildcard (digits, by the rule's constraint) names: within numpy's range,
    written as run folders are (no leading zero: seed07 would be seed7's run in another folder)."""
    seed = int(value)
    if value != str(seed):
        raise ConfigError(
            f"wildcard seed={value!r} in {path}: a seed is written without leading zeros "
            f"(seed{seed})"
        )
    if seed > SEED_MAX:
        raise ConfigError(
            f"wildcard seed={value} in {path}: above {SEED_MAX} (2^32 - 1), the largest seed "
            "numpy accepts"
        )
    return seed


def check_run(family: str, configs: dict, wildcards: dict, path: str) -> None:
    """A train or eval job's wildcards: its configuration one of its task's (`configs`: {task:
    {configuration: grid point}}; the rule's constraint admits every task's), its seed (absent
    in the joint_seeds form) in range."""
    task, cfg = wildcards["task"], wildcards["cfg"]
    if cfg not in configs[task]:
        raise ConfigError(
            f"wildcard cfg={cfg!r} in {path}: not a configuration of {family} task {task!r} "
            f"(its configurations: {', '.join(configs[task])})"
        )
    if "seed" in wildcards:
        check_seed(wildcards["seed"], path)


def check_summary_target(
    group: str, members: dict, active: list, path: str, task: str | None = None
) -> None:
    """A table or figure of report group `group` reads the summary, which gathers the runs of
    the families in `families` (`active`) only: one of its members (`members`: {family: its
    configured tasks}) that is listed must have `task` (None: a table, any task)."""
    listed = {name: tasks for name, tasks in members.items() if name in active}
    if not listed:
        raise ConfigError(
            f"wildcard group={group!r} in {path}: none of its families "
            f"({', '.join(members)}) is in `families`, and the summary it reads gathers only "
            "those; add one to `families`"
        )
    if task is not None and not any(task in tasks for tasks in listed.values()):
        known = [t for tasks in listed.values() for t in tasks]
        raise ConfigError(
            f"wildcard task={task!r} in {path}: not a task of the families of group {group!r} "
            f"listed in `families` (their tasks: {', '.join(known)})"
        )


def check_score(group: str, score: str, expected: str, path: str) -> None:
    """A score figure's name is its group's (TableRecipe.score_figure); the rule's constraint
    admits every group's."""
    if score != expected:
        raise ConfigError(
            f"wildcard score={score!r} in {path}: the score figure of group {group!r} is "
            f"{expected!r}"
        )


def family_of_task(group: str, members: dict, active: list, task: str, path: str) -> str:
    """The family of report group `group` whose runs of `task` a figure of that task reads (the
    attention gallery): one of its members (`members`: {family: its configured tasks}) listed in
    `families` (`active`) that has the task."""
    for name, tasks in members.items():
        if name in active and task in tasks:
            return name
    listed = [t for name, tasks in members.items() if name in active for t in tasks]
    raise ConfigError(
        f"wildcard task={task!r} in {path}: not a task of the families of group {group!r} listed "
        f"in `families` (their tasks: {', '.join(listed) or 'none: add one to `families`'})"
    )
