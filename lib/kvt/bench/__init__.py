"""Benchmarks anyone can rerun: the attention layer (layer), a training step (step), per-job
overhead (overhead), a step's profile (profile), the GPU check (gpu); timing.py measures
candidates side by side."""

import csv
from pathlib import Path


def write_rows(rows: list[dict], path, meta: dict | None = None, text: str | None = None) -> None:
    """A benchmark's rows as CSV, each with `meta` (where it ran) appended; folders made. `text`:
    the table as markdown, written beside it (.md)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = meta or {}
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], *meta])
        writer.writeheader()
        writer.writerows({**r, **meta} for r in rows)
    if text is not None:
        path.with_suffix(".md").write_text(text)
