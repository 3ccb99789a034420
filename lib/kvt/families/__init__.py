"""The registry of task families: every module of this package that declares a `FAMILY`, and the
modules named by the environment variable KVT_PLUGINS (comma-separated importable module names,
e.g. an experiment kept outside the package, or the test suite's toy experiment).

A new family is a new module here (its declaration, kvt.families.base.Family) and its runtime (an
Experiment, kvt.experiments.base), with its model and data, and where it has jobs of its own
(data, features, figures) workflow/rules/<family>.smk; its train and eval rules, tests, benchmark
cases and CI checks derive from the declaration. Nothing that iterates over families (config,
workflow, trainer, report core) names one. Torch-free.
"""

import importlib
import os
import pkgutil

from .base import ConfigError, Family, ReportGroup, TableRecipe, report_group, setting  # noqa: F401

PLUGINS_ENV = "KVT_PLUGINS"


def _declaring_modules() -> list[str]:
    own = [
        f"{__name__}.{m.name}"
        for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
        if m.name != "base"
    ]
    plugins = [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]
    return own + plugins


FAMILIES: dict[str, Family] = {}
for _module in _declaring_modules():
    _fam = getattr(importlib.import_module(_module), "FAMILY", None)
    if _fam is None and not _module.startswith(f"{__name__}."):
        raise ImportError(f"{PLUGINS_ENV} names {_module}, which declares no FAMILY")
    if _fam is not None:
        if _fam.name in FAMILIES:
            raise ValueError(f"two families are named {_fam.name!r} (the second in {_module})")
        FAMILIES[_fam.name] = _fam
FAMILIES = dict(sorted(FAMILIES.items(), key=lambda item: (item[1].order, item[0])))


# The report's groups (TableRecipe.group), in the families' order.
GROUPS: dict[str, ReportGroup] = {
    name: report_group(name, [f for f in FAMILIES.values() if f.report_group == name])
    for name in dict.fromkeys(f.report_group for f in FAMILIES.values())
}


def group(name: str) -> ReportGroup:
    """The report group `name`."""
    if name not in GROUPS:
        raise ValueError(f"unknown report group {name!r}; known: {', '.join(GROUPS)}")
    return GROUPS[name]


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown task family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]
