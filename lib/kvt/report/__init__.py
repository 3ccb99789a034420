"""Aggregation and reporting: per-run files -> one summary table -> paper-style tables and figures.

Kept apart from training so tables and figures can be rebuilt from finished runs alone, without
torch or a GPU.
"""

from .summary import collect, diff_runs, read_metrics, read_summary, write_summary

__all__ = ["collect", "diff_runs", "read_metrics", "read_summary", "write_summary"]
