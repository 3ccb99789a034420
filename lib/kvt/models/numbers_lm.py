"""The causal word-level LM of the reference's numbers_pos.ipynb (its Model7), on the shared
attention registry (docs/protocol.md, Human Numbers).

Embedding (truncated normal, std d**-0.5) times sqrt(d) plus a sinusoidal table (all sines, then
all cosines: the notebook's PositionalEncoding, not the interleaved kvt.positional), dropped ->
depth layers -> LayerNorm -> Linear head whose weight is the embedding's (tied; its bias its own).
A layer is the notebook's TransformerLayer, whose sublayers normalise their input and add their
output to the NORMALISED input, x = LN(x); x = x + drop(f(x)), not to the raw stream as the usual
pre-norm block (kvt.models.blocks) does: the residual stream passes through every LayerNorm.
Attention: projections without biases (K, V, Q and the output), the causal mask added after
kv_pos's positional term, no dropout on the attention weights; its output is dropped
(attn_out_dropout: the notebook's MultiHeadAttention default, as its TransformerLayer never
passes p_att on). Feed-forward: Linear (4d), ReLU, Linear, its output dropped (ff_dropout). The
notebook's init: every matrix of a layer xavier-uniform (kv_pos's map_pos weight too), biases
PyTorch's default (init 'xavier'; other inits leave the attention to the registry's).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..attention import build_attention
from ..settings import AttentionSettings

MLP_RATIO = 4  # the notebook's d_ff = 4 * d_model


@dataclass
class NumbersLMConfig(AttentionSettings):
    attention: str
    vocab_size: int
    seq_len: int
    d_model: int
    depth: int
    heads: int
    emb_dropout: float
    attn_out_dropout: float
    ff_dropout: float


def sinusoid_halves(n: int, d: int) -> torch.Tensor:
    """n x d: sin of every frequency, then cos of every frequency (the notebook's table)."""
    freq = 1 / (10000 ** (torch.arange(0.0, d, 2.0) / d))
    angles = torch.outer(torch.arange(n).float(), freq)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class NumbersLayer(nn.Module):
    """The notebook's TransformerLayer: x = LN(x); x = x + drop(attn(x)); x = LN(x);
    x + drop(ff(x)), causal."""

    def __init__(self, cfg: NumbersLMConfig):
        super().__init__()
        d = cfg.d_model
        self.attn_norm = nn.LayerNorm(d)
        self.attn = build_attention(
            cfg.attention,
            d,
            cfg.heads,
            bias=False,
            out_bias=False,
            max_len=cfg.seq_len,
            **cfg.attention_options(),
        )
        self.attn_drop = nn.Dropout(cfg.attn_out_dropout)
        self.ff_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, MLP_RATIO * d), nn.ReLU(), nn.Linear(MLP_RATIO * d, d))
        self.ff_drop = nn.Dropout(cfg.ff_dropout)
        with torch.no_grad():  # the notebook's TransformerLayer._init, over the whole layer
            for name, p in self.named_parameters():
                if p.dim() > 1 and (cfg.init == "xavier" or not name.startswith("attn.")):
                    nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(x)
        x = x + self.attn_drop(self.attn(x, causal=True))
        x = self.ff_norm(x)
        return x + self.ff_drop(self.ff(x))


class NumbersLM(nn.Module):
    """ids (B x T, T <= seq_len) -> B x T x vocab next-token logits."""

    def __init__(self, cfg: NumbersLMConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embedding = nn.Embedding(cfg.vocab_size, d)
        nn.init.trunc_normal_(self.embedding.weight, std=d**-0.5)
        self.register_buffer("pos_table", sinusoid_halves(cfg.seq_len, d), persistent=False)
        self.emb_drop = nn.Dropout(cfg.emb_dropout)
        self.layers = nn.ModuleList(NumbersLayer(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size)
        self.head.weight = self.embedding.weight  # tied

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"expected token ids of shape B x T, got {tuple(ids.shape)}")
        t = ids.shape[1]
        if t > self.cfg.seq_len:
            raise ValueError(f"sequence of {t} tokens exceeds seq_len={self.cfg.seq_len}")
        x = self.embedding(ids) * math.sqrt(self.cfg.d_model) + self.pos_table[:t]
        x = self.emb_drop(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))
