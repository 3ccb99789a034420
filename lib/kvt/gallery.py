"""Attention galleries (docs/analysis.md), the torch part: every attention call of a trained model
on the first example of its test split, through the family's own step (kvt.attention_record), as
numpy maps for kvt.report.gallery. Works for any family whose eval batches are tuples of tensors
with the batch first (the contract's eval_data, as kvt.runner.forward_flops assumes too)."""

import sys
from pathlib import Path

import numpy as np
import torch

from . import runner
from .attention_record import recording
from .report.gallery import ExampleMaps


def first_example(batch) -> tuple:
    """The batch cut to its first example (batch size 1), every tensor kept."""
    if not isinstance(batch, (tuple, list)) or not all(isinstance(t, torch.Tensor) for t in batch):
        raise TypeError(
            f"an eval batch is a tuple of tensors with the batch first, got {type(batch).__name__} "
            "(kvt.experiments.base: eval_data)"
        )
    sizes = {len(t) for t in batch}
    if len(sizes) != 1:
        raise ValueError(f"the tensors of an eval batch differ in batch size: {sorted(sizes)}")
    return tuple(t[:1] for t in batch)


def _masked(call) -> torch.Tensor:
    """queries x keys booleans, True where the scores were masked (the example's, head 0: a mask
    is the same for every head)."""
    mask = call.full_mask()
    m, n = call.maps.shape[-2:]
    if mask is None:
        return torch.zeros(m, n, dtype=torch.bool)
    return torch.isneginf(torch.broadcast_to(mask, call.maps.shape)[0, 0]).cpu()


def call_maps(calls) -> list[tuple[str, bool, np.ndarray]]:
    """(name, is_self, map) of each call: example 0, mean over heads, NaN where masked. Padding is
    dropped: a key masked for every query is padding (a causal mask leaves each key to its own
    query), and so is a query at a padding position of a self-attention map; a cross-attention's
    queries are the sequence of the last self-attention of their length (a decoder block's)."""
    out, padding = [], {}
    for call in calls:
        masked = _masked(call)
        weights = call.maps[0].float().mean(0).cpu().masked_fill(masked, float("nan"))
        keys = ~masked.all(0)
        if call.is_self:
            padding[len(keys)] = keys
            queries = keys
        else:
            queries = padding.get(weights.shape[0], torch.ones(weights.shape[0], dtype=torch.bool))
        out.append((call.name, call.is_self, weights[queries][:, keys].numpy()))
    return out


def example_maps(model, hp: dict, inputs: dict) -> ExampleMaps:
    """The maps of every attention call of `model` (a run of hp) on the first test example, and
    the example's token labels where the family has them (its example_tokens hook)."""
    rt = runner.experiment(hp["family"])
    batch = next(iter(rt.eval_data(hp, "test", inputs)()), None)
    if batch is None:
        raise ValueError(f"{hp['family']} {hp['task']}: the test split has no batch")
    example = first_example(batch)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad(), recording(model, keep_inputs=False) as calls:
        rt.step(model, tuple(t.to(device) for t in example))
    if not calls:
        raise ValueError(
            f"{hp['family']}: no attention module (kvt.attention.SelfAttention) ran in its step"
        )
    names, kinds, maps = zip(*call_maps(calls))
    tokens = rt.example_tokens(hp, inputs, example)
    return ExampleMaps(names, kinds, maps, None if tokens is None else tuple(tokens))


def gallery_job(job) -> None:
    """One task's gallery: each variant's model (first_models, checked to be its run's), its maps
    on the first test example, one row per variant."""
    from .jobs import inputs, setup
    from .report.figures import save
    from .report.gallery import gallery_figure

    device = setup(job)
    panels = {}
    # each model.pt must be its run's (params.hparams: first_models' runs; a copied file is refused)
    for path, hp in zip(job.input.models, job.params.hparams, strict=True):
        model, ckpt = runner.load_model(Path(path), device, expect=dict(hp))
        panels[ckpt["hparams"]["attention"]] = example_maps(model, ckpt["hparams"], inputs(job))
        print(f"{path}: {len(panels)} of {len(job.input.models)}", file=sys.stderr)
    save(gallery_figure(panels, job.wildcards.task), job.output.png, job.output.pdf)
