"""What a trained model's attention does, on the first test batches of its run (docs/analysis.md):
the eval job writes it to the run's attention.json (kvt.families.base.ATTENTION_FILE), and the
analyses (kvt.report.attention_terms) gather it over runs.

- **Diagonal mass** of every self-attention layer: the mean weight a query gives its own key,
  beside the uniform baseline (what a uniform attention over the same allowed keys would give).
- **kv_pos decomposed** (layers with the positional term, kv_pos and qkv_pos): the bias
  B_ij = w . P_ij + b split into a row part a(i), a column part c(j) and a remainder that is zero
  up to rounding, the temperature alpha = sum(w), and the numeric check that the layer computes
  softmax(alpha s q_i . k_j + c(j)): a plain kv (or qkv) layer with its weights, that temperature
  and a bias per key position (docs/attention.md, "kv_pos exactly").

Cost: at most PROBE_BATCHES test batches and PROBE_ITEMS items (sequences, images, sets), run
through the family's own step in chunks of PROBE_CHUNK items (each chunk's maps are reduced before
the next: the manual path holds batch x heads x n x n per layer), in float32.
"""

import contextlib

import torch

from .attention import ATTENTION, PositionalTerm, attend, build_attention
from .attention_record import Call, recording
from .positional import row_channels

PROBE_BATCHES = 4
PROBE_ITEMS = 512
PROBE_CHUNK = 64


def probe_chunks(batches, max_batches: int = PROBE_BATCHES, max_items: int = PROBE_ITEMS):
    """The first batches of an eval iterable, cut to at most max_items items in all and split into
    chunks of at most PROBE_CHUNK items (every tensor of a batch has its items first)."""
    left = max_items
    for i, batch in enumerate(batches):
        if i >= max_batches or left <= 0:
            return
        size = min(len(batch[0]), left)
        left -= size
        for start in range(0, size, PROBE_CHUNK):
            yield tuple(t[start : min(start + PROBE_CHUNK, size)] for t in batch)


# -- diagonal mass --------------------------------------------------------------------------------
def diagonal_sums(call: Call) -> dict:
    """Sums of one self-attention call, over the query rows whose own key is not masked (padding;
    a causal mask never masks the diagonal): per head the weights on the diagonal and the row
    count, and over all (batch, head, row) the uniform weight 1 / (allowed keys of the row)."""
    maps = call.maps.float()
    b, h, m, n = maps.shape
    if m != n:
        raise ValueError(f"{call.name}: self-attention maps of {m} queries and {n} keys")
    mask = call.full_mask()
    allowed = (
        torch.ones_like(maps, dtype=torch.bool)
        if mask is None
        else torch.broadcast_to(mask, maps.shape) != float("-inf")
    )
    own = allowed.diagonal(dim1=-2, dim2=-1)  # b x h x n: the rows that count
    keys = allowed.sum(-1).clamp(min=1)  # b x h x m
    diag = maps.diagonal(dim1=-2, dim2=-1)
    return {
        "diag": (diag * own).sum((0, 2)).double(),
        "rows": own.sum((0, 2)).double(),
        "uniform": (own.double() / keys).sum(),
    }


def add_sums(total: dict | None, part: dict) -> dict:
    return dict(part) if total is None else {k: total[k] + part[k] for k in total}


def diagonal_entry(name: str, sums: dict, calls: int, n_max: int) -> dict:
    """The JSON entry of one layer: rows weighted alike whatever their chunk or batch (the sums
    over every chunk divided by the rows counted)."""
    rows = sums["rows"]
    total = float(rows.sum())
    if total == 0:
        raise ValueError(f"{name}: no query row with its own key unmasked in the probe batches")
    return {
        "name": name,
        "calls": calls,
        "n_max": n_max,
        "heads": len(rows),
        "rows": int(total),  # (batch, head, row) triples
        "diagonal_mass": float(sums["diag"].sum()) / total,
        "diagonal_mass_per_head": [float(d / r) if r else None for d, r in zip(sums["diag"], rows)],
        "uniform_diagonal": float(sums["uniform"]) / total,
    }


# -- kv_pos decomposed ----------------------------------------------------------------------------
def has_positional_term(module) -> bool:
    return hasattr(module, "map_pos")


def decompose(module, m: int, n: int) -> dict:
    """The positional bias B (maps x m x n, as the module computes it) of m queries and n keys, its
    row part a(i) (the table's row channels), column part c(j) (the other channels, plus b), the
    remainder B - a(i) - c(j), and the temperature alpha = sum(w); tensors."""
    alpha, bias = module.score_terms(m, n, cross=False)
    w, b = module.map_pos.weight, module.map_pos.bias  # maps x pos_dim, maps
    r = row_channels(w.shape[1])
    table = module.pos_table
    row = w[:, :r] @ table[:m, 0, :r].T  # maps x m
    col = w[:, r:] @ table[0, :n, r:].T + b[:, None]  # maps x n
    remainder = bias - row[:, :, None] - col[:, None, :]
    return {"alpha": alpha.flatten(), "a": row, "c": col, "bias": bias, "remainder": remainder}


def plain_variant(module) -> str:
    """The registered variant a positional module adds its term to: kv for kv_pos, qkv for
    qkv_pos (the first registered class of its MRO without the term)."""
    for cls in type(module).__mro__:
        registered = ATTENTION.get(getattr(cls, "variant", None)) is cls
        if registered and not issubclass(cls, PositionalTerm):
            return cls.variant
    raise TypeError(f"{type(module).__name__} adds its positional term to no registered variant")


def plain_twin(module):
    """A module of plain_variant(module) with the same K, V, O (and Q) weights, no positional
    term, and the same scale."""
    plain = build_attention(
        plain_variant(module),
        module.d_model,
        module.heads,
        bias=module.k_proj.bias is not None,
        out_bias=module.out_proj.bias is not None,
        cross=getattr(module, "cross", None),
        init="torch",
    ).to(module.k_proj.weight.device)
    mine = module.state_dict()
    plain.load_state_dict({k: mine[k] for k in plain.state_dict()})  # every key: strict
    plain.scale = module.scale
    return plain.eval()


def plain_output(plain, call: Call, alpha: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """softmax(alpha s q_i . k_j + col_j + mask) v, then O, with the plain module's projections:
    alpha (maps), col (maps x n) a bias per key position, on the call's own inputs."""
    x, context = call.x, call.context
    source = x if context is None else context
    b, m, _ = x.shape
    k = plain.split_heads(plain.k_proj(source))
    v = plain.split_heads(plain.v_proj(source))
    q = plain.query(x, k, context) * (plain.scale * alpha[:, None, None])
    out, _ = attend(
        q, plain.keys(k), v, bias=col[:, None, :], mask=call.mask, causal=call.causal, sdpa=False
    )
    return plain.out_proj(out.transpose(1, 2).reshape(b, m, plain.d_model))


def equivalence_diff(module, call: Call, plain=None, alpha=None, col=None) -> tuple[float, float]:
    """(max |module's output - plain_output|, max |module's output|) on one call's inputs, with
    alpha and col from `decompose` unless given (a test perturbs them)."""
    m = call.x.shape[1]
    n = m if call.context is None else call.context.shape[1]
    parts = decompose(module, m, n)
    alpha = parts["alpha"] if alpha is None else alpha
    col = parts["c"] if col is None else col
    plain = plain_twin(module) if plain is None else plain
    own = module(call.x, mask=call.mask, context=call.context, causal=call.causal)
    diff = (own - plain_output(plain, call, alpha, col)).abs().max()
    return float(diff), float(own.abs().max())


def positional_entry(name: str, module, m: int, n: int, check: dict) -> dict:
    """The JSON entry of one layer with the positional term, decomposed at the largest m x n it
    saw; check: the equivalence's running maxima over its calls."""
    parts = decompose(module, m, n)
    return {
        "name": name,
        "variant": module.variant,
        "plain": plain_variant(module),
        "m": m,
        "n": n,
        "maps": len(parts["alpha"]),
        "alpha": parts["alpha"].tolist(),
        "max_abs_bias": float(parts["bias"].abs().max()),
        "max_abs_remainder": float(parts["remainder"].abs().max()),
        "c": parts["c"].tolist(),  # maps x n, the key-position bias (b included)
        "check_calls": check["calls"],
        "max_abs_diff": check["diff"],
        "max_abs_out": check["out"],
        "rel_diff": check["diff"] / check["out"] if check["out"] else check["diff"],
    }


# -- the probe -----------------------------------------------------------------------------------
@contextlib.contextmanager
def full_float32():
    """Matmuls in full float32 within the block, TF32 off whatever the job's precision (the
    equivalence check reads differences of 1e-6), the switches restored after it."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


class Tally:
    """The probe's running sums over the chunks, per layer (module path) in first-call order."""

    def __init__(self):
        self.order, self.calls = [], {}
        self.diagonal, self.n_max = {}, {}  # self-attention layers
        self.modules, self.shape, self.checks, self.twins = {}, {}, {}, {}  # positional ones

    def add(self, call: Call) -> None:
        name = call.name
        if name not in self.calls:
            self.order.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1
        m, n = call.maps.shape[-2:]
        if call.is_self:
            self.diagonal[name] = add_sums(self.diagonal.get(name), diagonal_sums(call))
            self.n_max[name] = max(n, self.n_max.get(name, 0))
        if has_positional_term(call.module):
            self.add_positional(call, m, n)

    def add_positional(self, call: Call, m: int, n: int) -> None:
        name = call.name
        self.modules[name] = call.module
        if n >= self.shape.get(name, (0, 0))[1]:
            self.shape[name] = (m, n)
        if name not in self.twins:
            self.twins[name] = plain_twin(call.module)
        diff, out = equivalence_diff(call.module, call, self.twins[name])
        old = self.checks.get(name, {"calls": 0, "diff": 0.0, "out": 0.0})
        self.checks[name] = {
            "calls": old["calls"] + 1,
            "diff": max(old["diff"], diff),
            "out": max(old["out"], out),
        }

    def layers(self) -> list[dict]:
        return [
            diagonal_entry(name, self.diagonal[name], self.calls[name], self.n_max[name])
            for name in self.order
            if name in self.diagonal
        ]

    def positional(self) -> list[dict]:
        return [
            positional_entry(name, self.modules[name], *self.shape[name], self.checks[name])
            for name in self.order
            if name in self.modules
        ]


@torch.no_grad()
def probe(model, rt, hp: dict, inputs: dict, device) -> dict:
    """attention.json of a model (its weights loaded) and its family's Experiment rt: the first
    test batches (see the module docstring) through rt.step, recorded, in eval mode and float32."""
    tally, items, chunks = Tally(), 0, 0
    training = model.training
    model.eval()
    try:
        with full_float32():
            for chunk in probe_chunks(rt.eval_data(hp, "test", inputs)()):
                chunk = tuple(t.to(device) for t in chunk)
                with recording(model) as recorded:
                    rt.step(model, chunk)
                for call in recorded:
                    tally.add(call)
                items, chunks = items + len(chunk[0]), chunks + 1
    finally:
        model.train(training)
    if not items:
        raise ValueError(f"{hp['family']}/{hp['task']}: the test split yields no batch to probe")
    return {
        "run": {k: hp[k] for k in ("family", "task", "cfg", "attention", "seed")},
        "probe": {
            "items": items,
            "chunks": chunks,
            "max_batches": PROBE_BATCHES,
            "max_items": PROBE_ITEMS,
            "dtype": "float32",
        },
        "layers": tally.layers(),
        "positional": tally.positional(),
    }
