"""Set-anomaly encoder (UvA tutorial 6 `AnomalyPredictor`): one score per set element.

No positional encoding: a set has no order, so qkv and kv are permutation-equivariant; kv_pos's
positional term breaks that (docs/protocol.md reports it anyway).
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..settings import AttentionSettings
from .blocks import Block
from .config import fixed


@dataclass
class SetAnomalyConfig(AttentionSettings):
    attention: str
    feature_dim: int = fixed(512)
    set_size: int = 10
    d_model: int = 256
    depth: int = 4
    heads: int = 4
    dropout: float = 0.1
    input_dropout: float = 0.1


class SetAnomalyEncoder(nn.Module):
    """Dropout + Linear(F, d) -> depth post-norm blocks -> Linear(d, d), LN, ReLU, dropout,
    Linear(d, 1): B x set_size x F features -> B x set_size scores (the loss applies the softmax
    over the set positions)."""

    def __init__(self, cfg: SetAnomalyConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Sequential(nn.Dropout(cfg.input_dropout), nn.Linear(cfg.feature_dim, d))
        self.blocks = nn.ModuleList(
            Block(
                cfg.attention,
                d,
                cfg.heads,
                2 * d,
                dropout=cfg.dropout,
                post_norm=True,
                max_len=cfg.set_size,
                **cfg.attention_options(),
            )
            for _ in range(cfg.depth)
        )
        self.head = nn.Sequential(
            nn.Linear(d, d),
            nn.LayerNorm(d),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(d, 1),
        )

    def _embed(self, features):
        if features.dim() != 3 or features.shape[-1] != self.cfg.feature_dim:
            raise ValueError(
                f"expected features of shape B x set x {self.cfg.feature_dim}, "
                f"got {tuple(features.shape)}"
            )
        return self.embed(features)

    def forward(self, features):
        """features: B x set_size x feature_dim -> B x set_size anomaly scores (logits)."""
        x = self._embed(features)
        for block in self.blocks:
            x = block(x)
        return self.head(x).squeeze(-1)

    def attention_maps(self, features) -> list[torch.Tensor]:
        """Per block, B x heads x n x n attention maps (manual path), computed in eval mode (the
        training mode is restored afterwards)."""
        was_training = self.training
        self.eval()
        try:
            x = self._embed(features)
            maps = []
            for block in self.blocks:
                _, attn = block.attn(x, need_weights=True)
                maps.append(attn)
                x = block(x)
        finally:
            self.train(was_training)
        return maps
