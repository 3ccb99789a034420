"""Benchmark 1: one attention layer, forward + backward, at the paper's shapes.

    python -m kvt.bench.layer [--device cpu|cuda] [--repeats 15] [--out results/bench/layer.csv]

Per shape, every candidate runs interleaved on the same inputs (kvt.bench.timing): our SDPA and
manual paths of every variant (SDPA as it runs, pos_form "auto", and each of its two forms:
the per-key term as one more channel of q and k, and the general n x n bias into SDPA), the literal
kv_pos formula of docs/attention.md (the batch x heads x n x n x pos_dim tensor),
and torch.nn.MultiheadAttention for qkv. Reports the median time, the bytes saved for backward
(and the peak allocated on a GPU), and the ratios the performance targets name.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..attention import build_attention, make_mask
from ..attention_names import added_to, attention_names
from . import write_rows
from .timing import device_meta, interleaved, peak_bytes, saved_bytes


@dataclass(frozen=True)
class Shape:
    name: str  # the task it comes from
    batch: int
    heads: int
    n: int  # queries (and keys, in self-attention)
    d_head: int
    pos_dim: int
    causal: bool = False
    context: int | None = None  # cross-attention: keys and values from a context this long
    scale: str = "head"

    @property
    def d_model(self) -> int:
        return self.heads * self.d_head

    def label(self) -> str:
        kind = f" cross n_k{self.context}" if self.context else (" causal" if self.causal else "")
        return f"B{self.batch} H{self.heads} n{self.n} d_h{self.d_head} p{self.pos_dim}{kind}"


def shapes() -> tuple[Shape, ...]:
    """Every family's attention shapes (its declaration's layer_shapes), in the registry's order."""
    from ..families import FAMILIES

    return tuple(Shape(name, **dims) for name, fam in FAMILIES.items() for dims in fam.layer_shapes)


SHAPES = shapes()


def literal_kv_pos(module, x, mask=None, context=None):
    """docs/attention.md's kv_pos taken literally, with the module's weights: map_pos applied to the
    score added to every channel of P_ij (batch x heads x m x n x pos_dim), then mask, softmax."""
    b, m, _ = x.shape
    source = x if context is None else context
    k = module.split_heads(module.k_proj(source))
    v = module.split_heads(module.v_proj(source))
    q = module.query(x, k, context)
    z = (module.scale * q @ k.transpose(-2, -1))[..., None] + module.pos_table[:m, : k.shape[2]]
    w, bias = module.map_pos.weight, module.map_pos.bias  # maps x pos_dim
    if w.shape[0] == 1:
        scores = z @ w[0] + bias[0]
    else:
        scores = torch.einsum("bhmnp,hp->bhmn", z, w) + bias[:, None, None]
    if mask is not None:
        scores = scores + mask
    out = scores.softmax(-1) @ v
    return module.out_proj(out.transpose(1, 2).reshape(b, m, module.d_model))


def _variant(name: str, shape: Shape, device, sdpa: bool, pos_form: str = "auto"):
    options = {"scale": shape.scale, "sdpa": sdpa, "pos_dim": shape.pos_dim, "max_len": 256}
    if shape.context and name != "qkv":
        options["cross"] = "qk"
    module = build_attention(name, shape.d_model, shape.heads, **options).to(device)
    if hasattr(module, "pos_form"):
        module.pos_form = pos_form
    return module


def candidates(shape: Shape, device) -> dict[str, tuple[str, nn.Module, callable]]:
    """{candidate: (variant, module, forward(x, mask, context) -> out)}. A causal shape's mask is
    the causal one: our modules get causal=True instead, as the models call them, and
    MultiheadAttention the mask with its is_causal hint."""

    def ours(x, mask, ctx, m):
        return m(x, mask=None if shape.causal else mask, context=ctx, causal=shape.causal)

    out = {}
    for variant in attention_names():
        for path in ("sdpa", "manual"):
            module = _variant(variant, shape, device, sdpa=path == "sdpa")
            out[f"{variant} {path}"] = (
                variant,
                module,
                lambda x, mask, ctx, m=module: ours(x, mask, ctx, m),
            )
    for form in ("channel", "bias"):
        module = _variant("kv_pos", shape, device, sdpa=True, pos_form=form)
        out[f"kv_pos sdpa, {form} form"] = (
            "kv_pos",
            module,
            lambda x, mask, ctx, m=module: ours(x, mask, ctx, m),
        )
    literal = _variant("kv_pos", shape, device, sdpa=False)
    out["kv_pos literal"] = (
        "kv_pos",
        literal,
        lambda x, mask, ctx, m=literal: literal_kv_pos(m, x, mask, ctx),
    )
    mha = nn.MultiheadAttention(shape.d_model, shape.heads, batch_first=True).to(device)

    def torch_mha(x, mask, ctx, m=mha):
        kv = x if ctx is None else ctx
        return m(
            x,
            kv,
            kv,
            attn_mask=None if mask is None else mask[0, 0],
            need_weights=False,
            is_causal=shape.causal,
        )[0]

    out["qkv torch.nn.MultiheadAttention"] = ("qkv", mha, torch_mha)
    return out


def run_shape(shape: Shape, device, repeats: int, warmup: int) -> list[dict]:
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape.batch, shape.n, shape.d_model, generator=gen).to(device).requires_grad_()
    ctx = None
    if shape.context:
        ctx = (
            torch.randn(shape.batch, shape.context, shape.d_model, generator=gen)
            .to(device)
            .requires_grad_()
        )
    mask = make_mask(shape.n, causal=True, device=device) if shape.causal else None
    grad = torch.randn(shape.batch, shape.n, shape.d_model, generator=gen).to(device)
    cands = candidates(shape, device)

    def step(fn):
        def call():
            fn(x, mask, ctx).backward(grad)

        return call

    def forward(fn):
        return lambda: fn(x, mask, ctx)

    times = interleaved(
        {name: step(fn) for name, (_, _, fn) in cands.items()},
        device,
        repeats=repeats,
        warmup=warmup,
    )
    rows = []
    for name, (variant, module, fn) in cands.items():
        peak = peak_bytes(step(fn), device)
        rows.append(
            {
                "shape": shape.name,
                "dims": shape.label(),
                "candidate": name,
                "variant": variant,
                "ms": round(times[name] * 1e3, 3),
                "saved_mib": round(saved_bytes(forward(fn)) / 2**20, 2),
                "peak_mib": None if peak is None else round(peak / 2**20, 2),
            }
        )
    return rows


RATIOS = (  # (label, numerator, denominator, target or None)
    ("kv_pos / kv (sdpa)", "kv_pos sdpa", "kv sdpa", "<= 1.15"),
    ("kv / qkv (sdpa)", "kv sdpa", "qkv sdpa", None),
    ("qkv sdpa / MultiheadAttention", "qkv sdpa", "qkv torch.nn.MultiheadAttention", "<= 1.0"),
    (
        "kv_pos bias form / channel form",
        "kv_pos sdpa, bias form",
        "kv_pos sdpa, channel form",
        None,
    ),
    ("kv_pos literal / kv_pos sdpa", "kv_pos literal", "kv_pos sdpa", None),
) + tuple(  # every other variant against its baseline (kvt.attention_names.added_to)
    (f"{v} / {added_to(v)} (sdpa)", f"{v} sdpa", f"{added_to(v)} sdpa", None)
    for v in attention_names()
    if v not in ("qkv", "kv", "kv_pos")
)


def ratios(rows: list[dict]) -> list[dict]:
    out = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        ms = {r["candidate"]: r["ms"] for r in rows if r["shape"] == shape}
        for label, num, den, target in RATIOS:
            out.append(
                {
                    "shape": shape,
                    "ratio": label,
                    "value": round(ms[num] / ms[den], 3),
                    "target": target or "",
                }
            )
    return out


def markdown(rows: list[dict], summary: list[dict], meta: dict) -> str:
    """The ratios per shape, then every candidate's time and memory, as markdown tables."""
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    labels = list(dict.fromkeys(s["ratio"] for s in summary))
    value = {(s["shape"], s["ratio"]): s["value"] for s in summary}
    target = {s["ratio"]: s["target"] for s in summary}
    lines = [
        f"Attention layer, forward + backward, float32, on {meta['device']} (torch "
        f"{meta['torch']}, {meta['date']}); medians of interleaved repetitions.",
        "",
        "| ratio | " + " | ".join(shapes) + " | target |",
        "| :-- | " + " | ".join("--:" for _ in shapes) + " | :-- |",
    ]
    lines += [
        f"| {label} | "
        + " | ".join(f"{value[(s, label)]:.2f}" for s in shapes)
        + f" | {target[label]} |"
        for label in labels
    ]
    lines += [
        "",
        "| shape | candidate | ms | saved for backward (MiB) | peak (MiB) |",
        "| :-- | :-- | --: | --: | --: |",
    ]
    lines += [
        f"| {r['shape']} ({r['dims']}) | {r['candidate']} | {r['ms']:.2f} | {r['saved_mib']:.1f} | "
        f"{'' if r['peak_mib'] is None else r['peak_mib']} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--shapes", nargs="+", choices=[s.name for s in SHAPES], default=[s.name for s in SHAPES]
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench/layer.csv"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for shape in (s for s in SHAPES if s.name in args.shapes):
        print(f"{shape.name}: {shape.label()} ...", file=sys.stderr, flush=True)
        rows += run_shape(shape, device, args.repeats, args.warmup)
    meta, summary = device_meta(device), ratios(rows)
    text = markdown(rows, summary, meta)
    write_rows(rows, args.out, meta, text)
    write_rows(summary, args.out.with_name(args.out.stem + "_ratios.csv"))
    print(text)


if __name__ == "__main__":
    main()
