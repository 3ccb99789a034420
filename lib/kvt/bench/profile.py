"""Where a training step's time goes: torch.profiler over steps of one benchmark case, its
operators grouped into matmuls, attention, optimizer, gradient clipping and the rest.

    python -m kvt.bench.profile [--family synthetic] [--cfg n128-d64-l2-h4] [--variant qkv]
                                [--device cpu|cuda] [--steps 10] [--top 15]

The cases and the step are those of kvt.bench.step (paper configuration, random data). Prints the
share of each group and the top operators by self time. Run from the repository root.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from ..config import load_config
from .step import CASES, VARIANTS, prepare
from .timing import sync

# Operator name fragments of each group, tried in this order (the first that matches wins).
GROUPS = (
    ("attention", ("scaled_dot_product", "flash_attention", "efficient_attention", "softmax")),
    ("matmul", ("addmm", "::mm", "bmm", "matmul", "linear")),
    ("dropout", ("bernoulli", "dropout")),
    ("layer norm", ("layer_norm",)),
    ("clip", ("vector_norm", "foreach_norm", "clip")),
    ("optimizer", ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt")),
)


def group_of(name: str) -> str:
    low = name.lower()
    return next((g for g, keys in GROUPS if any(k in low for k in keys)), "other")


def run(family: str, cfg: str | None, variant: str, device, steps: int, top: int) -> list[tuple]:
    case = next(c for c in CASES if c.family == family and (cfg is None or c.cfg == cfg))
    bench = prepare(load_config({"preset": "paper"}), case, variant, device)
    hp, call = bench.hp, bench.call
    for _ in range(3):
        call()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            call()
        sync(device)
    # self time of every operator (leaves and their parents' own work) sums to the step time
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [(e.key, getattr(e, attr)) for e in prof.key_averages()]
    total = sum(t for _, t in events) or 1
    groups = defaultdict(float)
    for name, t in events:
        groups[group_of(name)] += t
    print(
        f"{family} {hp['cfg']} {variant} on {device}: {total / steps / 1e3:.1f} ms of operator "
        f"self time per step (batch {hp['batch_size']})"
    )
    for g, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {g:<10} {100 * t / total:5.1f}%")
    print("top operators by self time:")
    for name, t in sorted(events, key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * t / total:5.1f}%  {t / steps / 1e3:8.2f} ms  {name}  [{group_of(name)}]")
    return sorted(groups.items(), key=lambda kv: -kv[1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="synthetic", choices=sorted({c.family for c in CASES}))
    parser.add_argument("--cfg", help="a configuration of the case list (kvt.bench.step.CASES)")
    parser.add_argument("--variant", default="qkv", choices=VARIANTS)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    if args.cfg and not any(c.cfg == args.cfg for c in CASES):
        parser.error(
            f"--cfg {args.cfg} is not a benchmark case; known: "
            f"{', '.join(c.cfg for c in CASES if c.cfg)}"
        )
    run(args.family, args.cfg, args.variant, torch.device(args.device), args.steps, args.top)


if __name__ == "__main__":
    main()
