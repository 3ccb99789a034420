"""Side-by-side measurement: candidates run interleaved (a rotating order each repetition), on the
same inputs, and are summarised by their median, so that drift and noise of the machine hit every
candidate alike. Ratios between candidates of one run are what the benchmarks report."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    candidates: dict[str, Callable[[], object]],
    device: torch.device,
    *,
    repeats: int = 15,
    warmup: int = 3,
) -> dict[str, float]:
    """{name: median seconds of one call}, each candidate called warmup + repeats times, the
    order rotated every repetition."""
    names = list(candidates)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            sync(device)
            start = time.perf_counter()
            candidates[name]()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves for the backward pass of fn(), each saved view once
    (a slice of a fixed table counts as the slice): the activation memory a training step holds,
    comparable across devices."""
    views: dict[tuple, int] = {}

    def pack(t):
        views[(t.data_ptr(), tuple(t.shape), t.stride())] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(views.values())


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory allocated while fn() runs, on a GPU; None on the CPU (no allocator stats)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def device_meta(device: torch.device) -> dict:
    """What a benchmark's rows record about where they ran."""
    from datetime import date

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    return {"device": name, "torch": torch.__version__, "date": date.today().isoformat()}
