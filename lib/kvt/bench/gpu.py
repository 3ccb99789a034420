"""A GPU check: one short training run of every family and variant on the device, its throughput
and peak memory, and the paper preset's GPU-hours at that throughput.

    python -m kvt.bench.gpu [--device cuda|cpu] [--steps N] [--precision fp32 tf32 bf16]
                            [--cases FAMILY ...] [--out results/bench/gpu.csv]

Per case of kvt.bench.step (each family and task at its paper configuration, random data of its
shapes) and variant: `--warmup` untimed steps, then `--steps` timed ones back to back (forward and
loss under the precision's autocast, backward, clip, Adam), the device synchronised only around
them, as in training. Writes <out> and <out>.md, and the estimate to gpu_hours.{csv,md} beside
them. `--device cpu` is for tests and dry runs. Run from the repository root (it reads
config.yaml for the paper's settings).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from .. import precision as prec
from ..config import load_config
from ..device import pick_device
from ..preflight import workload
from ..report.tables import markdown
from . import write_rows
from .step import CASES, VARIANTS, prepare
from .timing import device_meta, sync

NOTE = (
    "GPU-hours: each family's training matmul FLOPs in the paper preset (as kvt.preflight counts "
    "them) / the harmonic mean of the GFLOP/s measured for it here. Training matmuls only: no "
    "evaluation, data loading or per-job overhead. Runs sharing a GPU (config gpu_slots) can "
    "lower the wall time further."
)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and thread count."""
    name = device_meta(device)["device"]
    if device.type == "cuda":
        return name
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(
            line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")
        )
    except (OSError, StopIteration):
        return name
    return f"{model}, {name}"


def open_device(name: str) -> torch.device:
    try:
        return pick_device(name)
    except RuntimeError as err:  # no CUDA device: one line, no traceback
        raise SystemExit(f"kvt.bench.gpu: {err} (--device cpu for a dry run)") from None


def tokens_per_sample(model, batch) -> int:
    """Token positions one sample sends through the blocks: a ViT's patches and class token, else
    the sequence axis of each input (a batch's last tensor is the target)."""
    return getattr(model, "n_tokens", None) or sum(t.shape[1] for t in batch[:-1])


def seconds_per_step(call, device: torch.device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        call()
    sync(device)
    return (time.perf_counter() - start) / steps


def run_variant(
    config: dict, case, variant: str, precision: str, device: torch.device, steps: int, warmup: int
) -> dict:
    bench = prepare(config, case, variant, device, precision)
    t = seconds_per_step(bench.call, device, steps, warmup)
    b = bench.hp["batch_size"]
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "family": case.family,
        "task": case.task,
        "cfg": bench.hp["cfg"],
        "variant": variant,
        "precision": precision,
        "batch": b,
        "samples_per_s": round(b / t, 1),
        "tokens_per_s": round(tokens_per_sample(bench.model, bench.batch) * b / t),
        "gflop_per_s": round(3 * bench.flops * b / t / 1e9, 2),
        "peak_mib": None if peak is None else round(peak, 1),
    }


def progress(row: dict) -> str:
    peak = "" if row["peak_mib"] is None else f", peak {row['peak_mib']:,.0f} MiB"
    return (
        f"{row['precision']} {row['family']} {row['task']} {row['cfg']} {row['variant']}: "
        f"{row['samples_per_s']:,.0f} samples/s, {row['gflop_per_s']:,.1f} GFLOP/s{peak}"
    )


def estimate(config: dict, rows: list[dict]) -> list[dict]:
    """GPU-hours of the paper preset per measured family and precision, and their total, from the
    rates of the variants it runs (its `attentions`; the others are measured, not counted)."""
    work = workload(config)
    rows = [r for r in rows if r["variant"] in config["attentions"]]
    out = []
    for precision in dict.fromkeys(r["precision"] for r in rows):
        part = []
        for family in dict.fromkeys(r["family"] for r in rows if r["family"] in work):
            # harmonic mean: the time of equal FLOPs at each measured rate
            rate = statistics.harmonic_mean(
                [
                    r["gflop_per_s"]
                    for r in rows
                    if r["family"] == family and r["precision"] == precision
                ]
            )
            runs, flops = work[family]
            part.append(
                {
                    "family": family,
                    "precision": precision,
                    "runs": runs,
                    "train_pflop": round(flops / 1e15, 1),
                    "gflop_per_s": round(rate, 2),
                    "gpu_hours": round(flops / (rate * 1e9) / 3600, 2),
                }
            )
        out += part + [
            {
                "family": "total",
                "precision": precision,
                "runs": sum(p["runs"] for p in part),
                "train_pflop": round(sum(p["train_pflop"] for p in part), 1),
                "gflop_per_s": None,
                "gpu_hours": round(sum(p["gpu_hours"] for p in part), 2),
            }
        ]
    return out


def table(rows: list[dict]) -> str:
    cells = [
        ["" if v is None else f"{v:,}" if isinstance(v, (int, float)) else v for v in r.values()]
        for r in rows
    ]
    align = "".join("r" if isinstance(v, (int, float)) else "l" for v in rows[0].values())
    return markdown(list(rows[0]), cells, align)


def write(rows: list[dict], path: Path, caption: str) -> str:
    """rows as <path> (CSV) and <path>.md (caption, then the table); returns the markdown."""
    text = f"{caption}\n\n{table(rows)}"
    write_rows(rows, path, text=text)
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per family and variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--precision", nargs="+", choices=prec.PRECISIONS, default=["fp32"])
    parser.add_argument(
        "--cases",
        nargs="+",
        metavar="FAMILY",
        choices=sorted({c.family for c in CASES}),
        default=sorted({c.family for c in CASES}),
        help="families to run",
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench/gpu.csv"))
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    device = open_device(args.device)
    config = load_config({"preset": "paper"})
    meta = {"gpu": device_name(device), **device_meta(device)}
    rows = []
    for precision in args.precision:
        prec.configure(precision)
        for case in (c for c in CASES if c.family in args.cases):
            for variant in VARIANTS:
                row = run_variant(config, case, variant, precision, device, args.steps, args.warmup)
                print(progress(row), file=sys.stderr, flush=True)
                rows.append({"gpu": meta["gpu"], **row, "date": meta["date"]})
    steps = (
        f"{args.steps} timed step(s) after {args.warmup} warm-up step(s) per case and variant, "
        f"random data of each task's shapes, at its paper configuration (torch {meta['torch']})."
    )
    print(write(rows, args.out, f"Training throughput on {meta['gpu']}: {steps}"))
    print(
        write(
            estimate(config, rows),
            args.out.with_name("gpu_hours.csv"),
            f"Paper preset on {meta['gpu']}. {NOTE}",
        )
    )


if __name__ == "__main__":
    main()
