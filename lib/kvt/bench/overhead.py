"""Benchmark 3: per-job overhead of a finished pipeline (best: the smoke preset, whose jobs train
for well under a second). Per job kind, Snakemake's own benchmark files (wall time of each job)
against the time the train jobs spent in optimizer steps (run.json's train_seconds).

    python -m kvt.bench.overhead [RESULTS] [--out RESULTS/bench/overhead.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from . import write_rows


def job_times(results: Path) -> list[dict]:
    """One row per train or eval job with a benchmark file: family, kind, run, wall seconds and,
    for train jobs, the seconds spent in training steps."""
    rows = []
    for tsv in sorted((results / "benchmarks").glob("*/*/**/*.tsv")):
        family, kind, *rest = tsv.relative_to(results / "benchmarks").with_suffix("").parts
        if kind not in ("train", "eval"):
            continue
        with open(tsv, newline="") as f:
            wall = float(next(csv.DictReader(f, delimiter="\t"))["s"])
        run = "/".join(rest)
        inside = None
        if kind == "train":
            record = results / family / run / "run.json"
            if record.exists():
                inside = json.loads(record.read_text()).get("train_seconds")
        rows.append({"family": family, "kind": kind, "run": run, "wall_s": wall,
                     "train_s": inside, "overhead_s": None if inside is None else wall - inside})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for kind in ("train", "eval"):
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        over = [r["overhead_s"] for r in part if r["overhead_s"] is not None]
        out.append({"kind": kind, "jobs": len(part),
                    "median_wall_s": round(statistics.median(r["wall_s"] for r in part), 3),
                    "median_train_s": round(statistics.median(r["train_s"] for r in part if r["train_s"] is not None), 3) if over else None,
                    "median_overhead_s": round(statistics.median(over), 3) if over else
                    round(statistics.median(r["wall_s"] for r in part), 3)})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = job_times(args.results)
    if not rows:
        sys.exit(f"no job benchmark files under {args.results / 'benchmarks'}: run the pipeline first")
    out = args.out or args.results / "bench" / "overhead.csv"
    summary = summarize(rows)
    write_rows(rows, out)
    write_rows(summary, out.with_name(out.stem + "_summary.csv"))
    for s in summary:
        print(f"{s['kind']:<5} {s['jobs']:>4} jobs: median wall {s['median_wall_s']:.2f} s, "
              f"in training {s['median_train_s'] if s['median_train_s'] is not None else '-'} s, "
              f"overhead {s['median_overhead_s']:.2f} s (target for the smoke preset: < 2.5 s)")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
