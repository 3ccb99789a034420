"""Benchmark 2: one training step (forward, loss, backward, gradient clipping, Adam) of every family
and variant at its paper configuration, on random data of the shapes it trains on.

    python -m kvt.bench.step [--device cpu|cuda] [--repeats 10] [--out results/bench/step.csv]

Per configuration the variants run interleaved (kvt.bench.timing), beside a float32 matmul that
measures the device's matmul peak in the same run. Reports samples per second and the achieved
FLOP/s (3 x the forward pass's matmul FLOPs, runner.forward_flops, per sample) as a share of that
peak, and the ratios the performance targets name. Run from the repository root (it reads
config.yaml for the paper's settings).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import runner
from ..attention_names import added_to, attention_names
from ..config import load_config
from ..precision import autocast
from . import write_rows
from .timing import device_meta, interleaved

VARIANTS = tuple(attention_names())  # every registered variant, qkv first
PEAK = "matmul peak"


@dataclass(frozen=True)
class Case:
    family: str
    task: str
    cfg: str | None = None  # None: the task's first configuration in the paper grid


def cases() -> tuple[Case, ...]:
    """Every family's benchmark cases (its declaration's bench_cases), in the registry's order."""
    from ..families import FAMILIES

    return tuple(
        Case(name, task, cfg) for name, fam in FAMILIES.items() for task, cfg in fam.bench_cases
    )


CASES = cases()


def hparams(config: dict, case: Case, variant: str) -> dict:
    from ..families import FAMILIES

    fam, section = FAMILIES[case.family], config[case.family]
    cfg = case.cfg or next(iter(fam.configs(section, case.task)))
    hp = fam.hparams(section, case.task, cfg, variant, 0)
    return {**hp, **runner.experiment(case.family).bench_facts(hp)}  # data_facts, without data


def random_batch(hp: dict, gen: torch.Generator):
    """One training batch of random data with the shapes and value ranges `hp` trains on."""
    return runner.experiment(hp["family"]).random_batch(hp, gen)


@dataclass
class Bench:
    """One variant of a case, ready to time: `call()` runs one training step as the trainer does
    (forward and loss under the precision's autocast, backward, clip, Adam) on a fixed batch."""

    hp: dict
    model: nn.Module
    batch: tuple
    flops: int  # matmul FLOPs of one forward pass per sample (runner.forward_flops)
    call: Callable[[], None]


def prepare(config: dict, case: Case, variant: str, device, precision: str = "fp32") -> Bench:
    """The model (seed 0) and a random batch (seed 0: every variant gets the same inputs)."""
    hp = hparams(config, case, variant)
    rt = runner.experiment(hp["family"])
    torch.manual_seed(0)
    model = rt.build_model(hp).to(device).train()
    batch = tuple(t.to(device) for t in random_batch(hp, torch.Generator().manual_seed(0)))
    flops = runner.forward_flops(model, batch, rt.step)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def call():
        with autocast(precision, device):
            loss = rt.step(model, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    return Bench(hp, model, batch, flops, call)


def _matmul(device, size: int = 1024):
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    return (lambda: a @ b), 2 * size**3


def run_case(
    config: dict, case: Case, device, repeats: int, warmup: int, variants=VARIANTS
) -> list[dict]:
    calls, info = {}, {}
    for variant in variants:
        bench = prepare(config, case, variant, device)
        calls[variant] = bench.call
        info[variant] = {
            "cfg": bench.hp["cfg"],
            "batch": bench.hp["batch_size"],
            "flops": bench.flops,
            "params": sum(p.numel() for p in bench.model.parameters()),
        }
    peak_call, peak_flops = _matmul(device)
    calls[PEAK] = peak_call
    times = interleaved(calls, device, repeats=repeats, warmup=warmup)
    peak = peak_flops / times[PEAK]
    rows = []
    for variant in variants:
        i, t = info[variant], times[variant]
        achieved = 3 * i["flops"] * i["batch"] / t
        rows.append(
            {
                "family": case.family,
                "task": case.task,
                "cfg": i["cfg"],
                "variant": variant,
                "batch": i["batch"],
                "params": i["params"],
                "ms": round(t * 1e3, 3),
                "samples_per_s": round(i["batch"] / t, 1),
                "gflop_per_s": round(achieved / 1e9, 2),
                "peak_gflop_per_s": round(peak / 1e9, 2),
                "share_of_peak": float(f"{achieved / peak:.3g}"),
            }
        )
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Per case, each variant's step time over its baseline's (kvt.attention_names.added_to:
    kv / qkv, kv_pos / kv, qkv_pos / qkv, ...), where both ran, and qkv's share of the peak."""
    out = []
    for key in dict.fromkeys((r["family"], r["task"], r["cfg"]) for r in rows):
        ms = {r["variant"]: r for r in rows if (r["family"], r["task"], r["cfg"]) == key}
        name = f"{key[0]} {key[1]} {key[2]}"
        for variant in ms:
            base = added_to(variant)
            if base in ms:
                out.append(
                    {
                        "case": name,
                        "ratio": f"{variant} / {base} step",
                        "value": round(ms[variant]["ms"] / ms[base]["ms"], 3),
                    }
                )
        if "qkv" in ms:
            out.append(
                {
                    "case": name,
                    "ratio": "qkv share of matmul peak",
                    "value": ms["qkv"]["share_of_peak"],
                }
            )
    return out


def markdown(rows: list[dict], summary: list[dict], meta: dict) -> str:
    lines = [
        f"Training step (forward, loss, backward, clip, Adam), float32, on {meta['device']} "
        f"(torch {meta['torch']}, {meta['date']}); medians of interleaved repetitions, random "
        "data of each task's shapes.",
        "",
        "| family | task | configuration | variant | batch | ms / step | samples / s | GFLOP/s | "
        "share of matmul peak |",
        "| :-- | :-- | :-- | :-- | --: | --: | --: | --: | --: |",
    ]
    lines += [
        f"| {r['family']} | {r['task']} | {r['cfg']} | {r['variant']} | {r['batch']} | {r['ms']:.1f} | "
        f"{r['samples_per_s']:.0f} | {r['gflop_per_s']:.1f} | {r['share_of_peak']:.0%} |"
        for r in rows
    ]
    lines += ["", "| case | ratio | value |", "| :-- | :-- | --: |"]
    lines += [f"| {s['case']} | {s['ratio']} | {s['value']:.3f} |" for s in summary]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--families", nargs="+", default=sorted({c.family for c in CASES}))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("results/bench/step.csv"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    config = load_config({"preset": "paper"})
    rows = []
    for case in (c for c in CASES if c.family in args.families):
        print(f"{case.family} {case.task} {case.cfg or ''} ...", file=sys.stderr, flush=True)
        rows += run_case(config, case, device, args.repeats, args.warmup, args.variants)
    meta, summary = device_meta(device), ratios(rows)
    text = markdown(rows, summary, meta)
    write_rows(rows, args.out, meta, text)
    print(text)


if __name__ == "__main__":
    main()
