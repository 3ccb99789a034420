"""Aggregation and reporting: per-run files -> one summary table -> paper-style tables and figures.

Kept apart from training so tables and figures can be rebuilt from finished runs alone, without
torch or a GPU. Submodules load on first use, so `python -m kvt.report.summary` runs cleanly.
"""

import importlib

_EXPORTS = {
    "collect": "summary",
    "diff_runs": "summary",
    "read_metrics": "summary",
    "read_summary": "summary",
    "write_summary": "summary",
    "write_tables": "tables",
    "write_figure": "figures",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
