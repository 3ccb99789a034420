"""The registry of task families: every module of this package that declares a `FAMILY`.

A new family is a new module here (plus its runtime, model, data, rule file and tests); nothing
that iterates over families (config, workflow, trainer, report core) names one. Torch-free.
"""

import importlib
import pkgutil

from .base import ConfigError, Family, ReportGroup, TableRecipe, report_group, setting  # noqa: F401

FAMILIES: dict[str, Family] = {}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "base":
        _fam = getattr(importlib.import_module(f"{__name__}.{_info.name}"), "FAMILY", None)
        if _fam is not None:
            FAMILIES[_fam.name] = _fam
FAMILIES = dict(sorted(FAMILIES.items(), key=lambda item: (item[1].order, item[0])))


# The report's groups (TableRecipe.group), in the families' order.
GROUPS: dict[str, ReportGroup] = {
    name: report_group(name, [f for f in FAMILIES.values() if f.report_group == name])
    for name in dict.fromkeys(f.report_group for f in FAMILIES.values())}


def group(name: str) -> ReportGroup:
    """The report group `name`."""
    if name not in GROUPS:
        raise ValueError(f"unknown report group {name!r}; known: {', '.join(GROUPS)}")
    return GROUPS[name]


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown task family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]
