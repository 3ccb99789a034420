"""Benchmark 3: per-job overhead of a finished pipeline (best: the smoke preset, whose jobs train
for well under a second). Per job kind, Snakemake's own benchmark files (wall time of each job)
against the time the train jobs spent in optimizer steps (run.json's train_seconds); an eval
job's whole time counts as overhead. A joint_seeds job serves several runs: its overhead is
counted per run.

    python -m kvt.bench.overhead [RESULTS] [--out RESULTS/bench/overhead.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from ..families.base import JOINT_NAME
from . import write_rows


def job_times(results: Path) -> list[dict]:
    """One row per train or eval job with a benchmark file: family, kind, run, the runs it
    trained, wall seconds and, for train jobs, the seconds spent in training steps and the
    overhead per run."""
    rows = []
    for tsv in sorted((results / "benchmarks").glob("*/*/**/*.tsv")):
        family, kind, *rest = tsv.relative_to(results / "benchmarks").with_suffix("").parts
        if kind not in ("train", "eval"):
            continue
        with open(tsv, newline="") as f:
            wall = float(next(csv.DictReader(f, delimiter="\t"))["s"])
        run = "/".join(rest)
        folders = [results / family / run]
        if rest[-1] == JOINT_NAME:  # a joint_seeds job: the run folders of every seed
            folders = sorted((results / family).joinpath(*rest[:-1]).glob("seed*"))
        inside = None  # an eval job's test pass counts as overhead: it is short next to training
        if kind == "train":
            records = [f / "run.json" for f in folders]
            if not records or not all(r.exists() for r in records):
                continue
            inside = sum(json.loads(r.read_text()).get("train_seconds") for r in records)
        rows.append(
            {
                "family": family,
                "kind": kind,
                "run": run,
                "runs": len(folders),
                "wall_s": wall,
                "train_s": inside,
                "overhead_s": (wall - (inside or 0.0)) / len(folders),
            }
        )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for kind in ("train", "eval"):
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        inside = [r["train_s"] for r in part if r["train_s"] is not None]
        out.append(
            {
                "kind": kind,
                "jobs": len(part),
                "runs": sum(r["runs"] for r in part),
                "median_wall_s": round(statistics.median(r["wall_s"] for r in part), 3),
                "median_train_s": round(statistics.median(inside), 3) if inside else None,
                "median_overhead_s": round(statistics.median(r["overhead_s"] for r in part), 3),
            }
        )
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = job_times(args.results)
    if not rows:
        sys.exit(
            f"no job benchmark files under {args.results / 'benchmarks'}: run the pipeline first"
        )
    out = args.out or args.results / "bench" / "overhead.csv"
    summary = summarize(rows)
    write_rows(rows, out)
    write_rows(summary, out.with_name(out.stem + "_summary.csv"))
    for s in summary:
        print(
            f"{s['kind']:<5} {s['jobs']:>4} jobs, {s['runs']:>4} runs: median wall "
            f"{s['median_wall_s']:.2f} s, in training "
            f"{s['median_train_s'] if s['median_train_s'] is not None else '-'} s, overhead per "
            f"run {s['median_overhead_s']:.2f} s (target for the smoke preset: < 2.5 s)"
        )
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
