"""Sizes the data cannot hold: every family's settings checked against its datasets' facts.

Before any job, kvt.config.resolve checks every section (listed in `families` or not) against the
declared facts (kvt.data.facts). A data rule, which alone knows what its files hold (fixtures,
staged files), checks the same limits against what it measured (`check_measured`). Either way
one ConfigError names each setting, its value, the bound and why. The data rule records what it
measured in its manifest, so a setting changed later is checked against those files as well
before any job (`check_prepared`): a changed setting reruns no data rule. Torch-free.
"""

import json
from pathlib import Path

from .data.facts import FACTS, from_record
from .families import FAMILIES, ConfigError
from .families.base import Limit


def config_limits(config: dict, facts: dict = FACTS) -> list[Limit]:
    """The limits of every family's section of a resolved configuration under `facts`."""
    return [
        limit
        for name, fam in FAMILIES.items()
        if fam.limits is not None and name in config
        for limit in fam.limits(config[name], facts)
    ]


def refuse(broken: list[Limit], where: str) -> None:
    """Raise one ConfigError listing every broken limit (none: return)."""
    if broken:
        lines = "\n".join(f"  {limit.message()}" for limit in broken)
        raise ConfigError(f"settings the data cannot hold ({where}):\n{lines}")


def check_limits(config: dict) -> None:
    """Refuse settings the declared datasets cannot hold (before any job)."""
    refuse([lim for lim in config_limits(config) if lim.broken], "kvt.data.facts")


def check_measured(config: dict, dataset: str, measured, where: str = "") -> None:
    """Refuse settings that `dataset`'s files, as a data rule measured them (`measured`: facts of
    the dataset's kind), cannot hold."""
    facts = {**FACTS, dataset: measured}
    broken = [lim for lim in config_limits(config, facts) if lim.dataset == dataset and lim.broken]
    refuse(broken, where or f"measured on the files of {dataset} that the data rule prepared")


def manifest_path(results, dataset: str) -> Path:
    """The data rule's manifest of `dataset` (the rules' f"{RESULTS}/data/{{dataset}}.json")."""
    return Path(results) / "data" / f"{dataset}.json"


def check_prepared(config: dict) -> None:
    """Refuse settings that the files the data rules already prepared cannot hold, as their
    manifests record them (a manifest without a record, or unreadable, is left to the jobs that
    read it)."""
    for dataset in FACTS:
        path = manifest_path(config["results"], dataset)
        try:
            measured = from_record(json.loads(path.read_text())["facts"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        check_measured(
            config,
            dataset,
            measured,
            f"measured on the files of {dataset} by its data rule ({path}); other files in "
            "place: delete that manifest and its data rule measures them again",
        )
