"""The attention variants of the study, one registry keyed by the names of docs/attention.md.

Layout: `attend` is the math (scores, bias, mask, softmax, weighted sum), apart from the
projections. The modules share one head layout (`SelfAttention`); a variant only says what plays
the query (`query`) and which temperature and additive bias enter the scores (`score_terms`).
Every variant has an SDPA path (`F.scaled_dot_product_attention`) and a manual path that can
return the attention maps; both compute the same function.
"""

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from .positional import row_channels, sinusoid_2d
from .relative import RelativeBias
from .settings import POS_FORMS

ATTENTION: dict[str, type["SelfAttention"]] = {}
SCALES = ("head", "model")
INITS = ("fused", "xavier", "torch")  # see SelfAttention.reset_parameters


def register(name: str):
    """Class decorator: make a SelfAttention subclass available under `name`."""

    def add(cls):
        if name in ATTENTION:
            raise ValueError(f"attention variant {name!r} is registered twice")
        cls.variant = name
        ATTENTION[name] = cls
        return cls

    return add


def options_of(cls) -> set[str]:
    """The keyword options a variant's constructors (along its MRO) accept."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in (
                "self",
                "d_model",
                "heads",
            ):
                names.add(p.name)
    return names


def build_attention(name: str, d_model: int, heads: int, **options) -> "SelfAttention":
    """The attention module registered as `name` (qkv, kv, kv_pos, ...).

    A model passes one set of options whatever variant its config names: options that another
    registered variant takes (pos_dim for qkv) are dropped; an option no variant knows (a typo
    such as pos_dims) is an error that names it."""
    if name not in ATTENTION:
        raise ValueError(
            f"unknown attention variant {name!r}; known: {', '.join(sorted(ATTENTION))}"
        )
    known = set().union(*(options_of(cls) for cls in ATTENTION.values()))
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"unknown attention option(s) {', '.join(unknown)} for variant {name!r}; "
            f"known options: {', '.join(sorted(known))}"
        )
    mine = options_of(ATTENTION[name])
    return ATTENTION[name](d_model, heads, **{k: v for k, v in options.items() if k in mine})


def make_mask(
    n_q: int,
    n_k: int | None = None,
    *,
    causal: bool = False,
    key_padding: torch.Tensor | None = None,
    device=None,
) -> torch.Tensor | None:
    """Additive mask M (0 or -inf), broadcastable to batch x heads x n_q x n_k, or None.

    key_padding: batch x n_k booleans, True where the key is padding (PyTorch's convention).
    """
    n_k = n_q if n_k is None else n_k
    mask = None
    if causal:
        future = torch.ones(n_q, n_k, dtype=torch.bool, device=device).triu(1)
        mask = torch.zeros(n_q, n_k, device=device).masked_fill(future, float("-inf"))[None, None]
    if key_padding is not None:
        if key_padding.shape[-1] != n_k:
            raise ValueError(f"key_padding has {key_padding.shape[-1]} keys, expected {n_k}")
        pad = torch.zeros(key_padding.shape, device=key_padding.device)
        pad = pad.masked_fill(key_padding, float("-inf"))[:, None, None, :]
        mask = pad if mask is None else mask + pad
    return mask


def attend(
    q,
    k,
    v,
    *,
    bias=None,
    mask=None,
    dropout_p: float = 0.0,
    sdpa: bool = True,
    need_weights: bool = False,
    causal: bool = False,
):
    """softmax(q k^T + bias + mask) v, with q already scaled; q, k, v: batch x heads x n x d_h.

    bias: (1 or heads) x n_q x n_k, shared by the batch; mask: additive, from `make_mask`.
    causal: key j > query i masked out, as make_mask(causal=True) would; SDPA's is_causal when
    nothing else is added (its causal kernels; on a CPU the same numbers, bit for bit).
    Returns (out, attention maps or None). The SDPA path cannot return maps.
    """
    if bias is not None and bias.dim() == 3:
        bias = bias[None]  # 4-D: SDPA's CPU kernel takes a 3-D mask on a slow path (2.7x at n 128)
    extra = bias if mask is None else (mask if bias is None else bias + mask)
    fast = sdpa and not need_weights
    if causal and (extra is not None or not fast):
        future = make_mask(q.shape[-2], k.shape[-2], causal=True, device=q.device)
        extra, causal = (future if extra is None else extra + future), False
    if fast:
        if extra is not None:
            extra = extra.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=extra, dropout_p=dropout_p, scale=1.0, is_causal=causal
        )
        return out, None
    scores = q @ k.transpose(-2, -1)
    if extra is not None:
        scores = scores + extra
    attn = scores.softmax(dim=-1)
    out = F.dropout(attn, dropout_p) @ v if dropout_p > 0 else attn @ v
    return out, attn


def attend_column(
    q,
    k,
    v,
    col,
    temperature,
    *,
    mask=None,
    dropout_p: float = 0.0,
    multiple: int = 1,
    causal: bool = False,
):
    """softmax(t q k^T + col_j + mask) v without an n x n bias: one more channel on each side,
    [t q_i, 1] . [k_j, col_j] = t q_i . k_j + col_j, so SDPA keeps its fast kernels (an n x n bias
    that needs a gradient sends it to the slow one). temperature t: a number or (1 or heads) x 1 x
    1; col: (1 or heads) x n_k, a bias per key shared by the batch. v gets a zero channel (kernels
    want equal head widths); all three are zero-padded to a multiple of `multiple` channels (GPU
    flash kernels want 8). causal: as in `attend`."""
    b, h, n, d = k.shape
    if causal and mask is not None:
        mask, causal = mask + make_mask(q.shape[-2], n, causal=True, device=q.device), False
    extra = -(-(d + 1) // multiple) * multiple - d - 1  # zero channels after the one used
    q = F.pad(q * temperature, (0, 1), value=1.0)
    k = torch.cat((k, col.to(k.dtype)[None, :, :, None].expand(b, h, n, 1)), -1)
    if extra:
        q, k = F.pad(q, (0, extra)), F.pad(k, (0, extra))
    v = F.pad(v, (0, 1 + extra))
    if mask is not None:
        mask = mask.to(q.dtype)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=1.0, is_causal=causal
    )
    return out[..., :d]


class SelfAttention(nn.Module):
    """Shared projections and head layout: K, V and O are d x d; subclasses add the query side.

    scale: 'head' (1/sqrt(d/heads)) or 'model' (1/sqrt(d)). bias: bias of the K/V(/Q) projections;
    out_bias: bias of O (defaults to `bias`). init: how the projections start (reset_parameters).
    """

    variant = "?"

    def __init__(
        self,
        d_model: int,
        heads: int,
        *,
        bias: bool = True,
        out_bias: bool | None = None,
        scale: str = "head",
        attn_dropout: float = 0.0,
        sdpa: bool = True,
        init: str = "xavier",
    ):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.init = init
        self.d_model, self.heads, self.d_head = d_model, heads, d_model // heads
        self.scale = 1.0 / math.sqrt(self.d_head if scale == "head" else d_model)
        self.attn_dropout, self.sdpa = attn_dropout, sdpa
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias if out_bias is None else out_bias)

    @torch.no_grad()
    def reset_parameters(self):
        """Initialise the projections by `init`:
        fused: the reference's (UvA tutorial 6, the synthetic and set-anomaly code): the input
          projections are ONE matrix, [W_Q; W_K; W_V] (3d x d) or [W_K; W_V] (2d x d), drawn
          xavier-uniform as a whole (bound sqrt(6/4d) or sqrt(6/3d): kv's K starts larger than
          qkv's); W_O xavier-uniform; biases zero; map_pos (once built) xavier weight, zero bias.
        xavier: each matrix xavier-uniform on its own, biases zero; map_pos keeps PyTorch's default.
        torch: PyTorch's defaults throughout (the reference's ViT and char-level GPT set none)."""
        if self.init == "torch":
            return
        inputs = [getattr(self, n) for n in ("q_proj", "k_proj", "v_proj") if hasattr(self, n)]
        if self.init == "fused":
            whole = nn.init.xavier_uniform_(torch.empty(len(inputs) * self.d_model, self.d_model))
            for lin, part in zip(inputs, whole.split(self.d_model)):
                lin.weight.copy_(part)
        else:
            for lin in inputs:
                nn.init.xavier_uniform_(lin.weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        for lin in inputs + [self.out_proj]:
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def split_heads(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d_head).transpose(1, 2)

    def query(self, x, k, context=None):
        """The query heads (batch x heads x m x d_h) of x; k: the key heads (of x itself, or of
        `context` in cross-attention)."""
        raise NotImplementedError

    def score_terms(self, m: int, n: int | None = None, cross: bool = False):
        """(alpha, bias): a temperature multiplying the scaled scores (None or heads x 1 x 1)
        and an additive bias ((1 or heads) x m x n), for m queries and n keys (n = m: self);
        cross: the keys are another sequence's (never decided by comparing m and n)."""
        return None, None

    def keys(self, k):
        """The key heads that enter the product q k^T, from those of k_proj (which the query side
        of the kv variants reuses as they are)."""
        return k

    def _scaled_query(self, x, k, context=None):
        """(query heads times the temperature, additive bias or None) of x, given the key heads."""
        q = self.query(x, k, context)
        alpha, bias = self.score_terms(x.shape[1], k.shape[2], cross=context is not None)
        temperature = self.scale if alpha is None else self.scale * alpha
        return q * temperature, bias

    def scores(self, x, context=None):
        """The scores S before the mask and the softmax (batch x heads x m x n), for figures:
        symmetric for kv, plus a per-key column term for kv_pos (docs/attention.md)."""
        k = self.split_heads(self.k_proj(x if context is None else context))
        q, bias = self._scaled_query(x, k, context)
        s = q @ self.keys(k).transpose(-2, -1)
        return s if bias is None else s + bias

    def column_terms(self, m: int, n: int):
        """(alpha, col) when the additive bias of score_terms (m queries, n keys) equals a per-key
        term col (maps x n) up to a per-query constant, which the row softmax cancels; None when
        it does not (then the general form runs)."""
        return None

    def forward(self, x, mask=None, need_weights: bool = False, context=None, causal: bool = False):
        """x: batch x m x d; context: batch x n x d, the keys' and values' side of cross-attention
        (None: self-attention, n = m); mask: additive, m x n (see make_mask); causal: mask every
        key after the query's position, as make_mask(causal=True) does, on SDPA's causal kernels
        where nothing else is masked. Returns out (batch x m x d), or (out, maps)."""
        b, m, _ = x.shape
        source = x if context is None else context
        k = self.split_heads(self.k_proj(source))
        v = self.split_heads(self.v_proj(source))
        dropout_p = self.attn_dropout if self.training else 0.0
        column = self.column_terms(m, k.shape[2]) if self.sdpa and not need_weights else None
        if column is not None:  # the fast exact form: a per-key bias as one more channel
            alpha, col = column
            out = attend_column(
                self.query(x, k, context),
                self.keys(k),
                v,
                col,
                self.scale if alpha is None else self.scale * alpha,
                mask=mask,
                dropout_p=dropout_p,
                multiple=8 if k.is_cuda else 1,
                causal=causal,
            )
            attn = None
        else:
            q, bias = self._scaled_query(x, k, context)
            out, attn = attend(
                q,
                self.keys(k),
                v,
                bias=bias,
                mask=mask,
                sdpa=self.sdpa,
                dropout_p=dropout_p,
                need_weights=need_weights,
                causal=causal,
            )
        out = self.out_proj(out.transpose(1, 2).reshape(b, m, self.d_model))
        return (out, attn) if need_weights else out


@register("qkv")
class QKVAttention(SelfAttention):
    """Standard attention: S = s Q K^T."""

    def __init__(self, d_model, heads, *, bias=True, **options):
        super().__init__(d_model, heads, bias=bias, **options)
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.reset_parameters()

    def query(self, x, k, context=None):
        return self.split_heads(self.q_proj(x))


CROSS_MODES = ("qk", "kk")


@register("kv")
class KVAttention(SelfAttention):
    """Query-free attention: S = s K K^T, symmetric before the mask.

    Between two sequences (decoder states x, encoder states `context`) query-free attention is
    not defined; `cross` says what the kv variants do there (docs/attention.md): `qk` a query
    projection for cross-attention only, S = s (x W_Q)(context W_K)^T (what the reference ran);
    `kk` the same W_K on both sides, S = s (x W_K)(context W_K)^T. None: self-attention only. The
    mode is fixed at construction, never decided by comparing lengths (the reference's bug).
    """

    def __init__(self, d_model, heads, *, cross: str | None = None, bias: bool = True, **options):
        super().__init__(d_model, heads, bias=bias, **options)
        if cross not in (None, *CROSS_MODES):
            raise ValueError(f"cross must be one of {CROSS_MODES} (or None), got {cross!r}")
        self.cross = cross
        if cross == "qk":
            self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.reset_parameters()

    def query(self, x, k, context=None):
        if context is None:
            return k
        if self.cross is None:
            raise ValueError(
                f"{self.variant} attention was built for self-attention only; build it "
                f"with cross='qk' or 'kk' to attend to a context"
            )
        proj = self.q_proj if self.cross == "qk" else self.k_proj
        return self.split_heads(proj(x))


class PositionalTerm:
    """The kv_pos positional term, mixed into any query side: S = map_pos(s Q K^T + P).

    map_pos is Linear(pos_dim -> 1) applied to the score added to each channel of P_ij. Being
    linear, it equals alpha * s Q K^T + B with alpha = sum(w), B_ij = w . P_ij + b: that fused form
    runs here (one n x n bias per forward, never the batch x heads x n x n x pos_dim tensor).
    pos_per_head: one map per head instead of one per layer (the char-LM reference).
    """

    def __init__(
        self,
        d_model,
        heads,
        *,
        pos_dim: int = 10,
        max_len: int = 512,
        pos_per_head: bool = False,
        pos_form: str = "auto",
        **options,
    ):
        super().__init__(d_model, heads, **options)
        if pos_form not in POS_FORMS:
            raise ValueError(f"pos_form must be one of {POS_FORMS}, got {pos_form!r}")
        self.max_len, self.pos_form = max_len, pos_form
        self.map_pos = nn.Linear(pos_dim, heads if pos_per_head else 1)
        self.register_buffer("pos_table", sinusoid_2d(max_len, pos_dim), persistent=False)
        if self.init == "fused":  # the reference's map_pos init (xavier's only applies to O, K, V)
            nn.init.xavier_uniform_(self.map_pos.weight)
            nn.init.zeros_(self.map_pos.bias)

    # How the SDPA path adds the term: "channel" (column_terms: one more channel of q and k, no
    # n x n tensor), "bias" (an n x n bias into SDPA, the general form for any table) or "auto".
    # A bias that needs a gradient sends SDPA to its slow path, which holds n x n scores: the
    # channel form's three copies of q, k and v (d_h + 1 wide) cost less once n_k > 2 d_h, which
    # "auto" takes as the switch (kvt.bench.layer: at n 128, d_h 16 the bias form is 1.6-1.8x the
    # channel form; at n <= 2 d_h it is 0.8-1.0x).
    pos_form = "auto"

    def _channel_form(self, n: int) -> bool:
        return self.pos_form == "channel" or (self.pos_form == "auto" and n > 2 * self.d_head)

    def _check_len(self, m, n):
        if max(m, n) > self.max_len:
            raise ValueError(
                f"sequence of {max(m, n)} tokens exceeds {self.variant} max_len={self.max_len}"
            )

    def score_terms(self, m, n=None, cross=False):
        n = m if n is None else n
        self._check_len(m, n)
        w, b = self.map_pos.weight, self.map_pos.bias  # maps x pos_dim, maps
        alpha = w.sum(-1)[:, None, None]
        bias = (
            torch.einsum("ijp,mp->mij", self.pos_table[:m, :n], w) + b[:, None, None]
        )  # P[:m, :n]
        return alpha, bias

    def column_terms(self, m, n):
        """The table's leading channels depend on the query position i only, the others on the
        key position j only (positional.row_channels), so w . P_ij + b = a(i) + c(j) + b: a(i)
        is constant along a row and cancels in the softmax. col_j = c(j) + b keeps b in the graph
        (its gradient is zero, as in the bias form); masks do not change this."""
        if not self._channel_form(n):
            return None
        self._check_len(m, n)
        w, b = self.map_pos.weight, self.map_pos.bias
        r = row_channels(w.shape[1])
        col = w[:, r:] @ self.pos_table[0, :n, r:].T + b[:, None]  # maps x n
        return w.sum(-1)[:, None, None], col


@register("kv_pos")
class KVPosAttention(PositionalTerm, KVAttention):
    """kv plus the positional term: S = map_pos(s K K^T + P) (the paper's KV+Pos)."""


@register("qkv_pos")
class QKVPosAttention(PositionalTerm, QKVAttention):
    """qkv plus the same positional term: separates dropping Q from adding the term (not in the paper)."""


@register("kv_rel")
class KVRelAttention(KVAttention):
    """kv plus a learned relative-position bias per head: S = s K K^T + b_h(i - j), the offset
    clipped at rel_clip (None: not clipped, a bias for every offset up to max_len - 1); on an image `grid` the 2D patch offset, the CLS token with entries of its
    own (kvt.relative). The bias depends on the query's position, which kv_pos's term cannot.
    Cross-attention: the same kind of bias over the offset i - j of target position i and source
    position j (a learned alignment prior; kv_pos likewise uses P[:m, :n] there), its own table."""

    def __init__(
        self,
        d_model,
        heads,
        *,
        max_len: int = 512,
        rel_clip: int | None = None,
        grid: tuple[int, int] | None = None,
        **options,
    ):
        super().__init__(d_model, heads, **options)
        self.max_len, self.rel_clip = max_len, rel_clip
        self.rel_bias = RelativeBias(heads, max_len=max_len, clip=rel_clip, grid=grid)

    def score_terms(self, m, n=None, cross=False):
        return None, self.rel_bias(m, n)


# Added to the diagonal of kv_shared's scores: exp underflows to exactly 0 beside any allowed key
# (float32 and bfloat16 below -104), while a token whose every other key is masked (-inf) still
# attends to itself, as the Reformer's implementations do; and it stays finite in float16.
SELF_MASK = -1e4


@register("kv_shared")
class KVSharedAttention(KVAttention):
    """The Reformer's shared-QK attention (Kitaev et al. 2020): S_ij = s k_i . k_j / |k_j|, the
    keys (not the queries) at unit length, and no attention to oneself unless every other key
    is masked (SELF_MASK). Cross-attention: the kv modes, keys at unit length, no self mask (a
    decoder position is never an encoder token)."""

    def keys(self, k):
        return F.normalize(k, dim=-1)

    def scores(self, x, context=None):
        """s k_i . k_j / |k_j| before any mask, the self mask included (a mask, not a score: its
        SELF_MASK would swamp the colour scale of a figure)."""
        k = self.split_heads(self.k_proj(x if context is None else context))
        return (self.query(x, k, context) * self.scale) @ self.keys(k).transpose(-2, -1)

    def score_terms(self, m, n=None, cross=False):
        if cross:
            return None, None
        n = m if n is None else n
        eye = torch.eye(m, n, dtype=torch.bool, device=self.k_proj.weight.device)
        zero = torch.zeros(m, n, device=eye.device)
        return None, zero.masked_fill(eye, SELF_MASK)[None]
