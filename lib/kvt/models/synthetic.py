"""Encoder-only per-position classifier of the synthetic tasks (UvA tutorial 6 layout)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..positional import sinusoid_1d
from ..settings import AttentionSettings
from .blocks import Block
from .config import fixed


@dataclass
class SyntheticModelConfig(AttentionSettings):
    attention: str
    seq_len: int
    d_model: int
    depth: int
    heads: int
    num_classes: int = fixed(10)
    dropout: float = 0.1


class SequenceClassifier(nn.Module):
    """one-hot -> Linear(10, d) + 1D sinusoid -> depth post-norm blocks -> per-token classes."""

    def __init__(self, cfg: SyntheticModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Linear(cfg.num_classes, d)
        self.register_buffer("pos", sinusoid_1d(cfg.seq_len, d), persistent=False)
        self.blocks = nn.ModuleList(
            Block(
                cfg.attention,
                d,
                cfg.heads,
                2 * d,
                dropout=cfg.dropout,
                post_norm=True,
                max_len=cfg.seq_len,
                **cfg.attention_options(),
            )
            for _ in range(cfg.depth)
        )
        self.head = nn.Sequential(
            nn.Linear(d, d),
            nn.LayerNorm(d),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(d, cfg.num_classes),
        )

    def forward(self, tokens):
        """tokens: batch x n ints in [0, num_classes) -> batch x n x num_classes logits."""
        x = self.embed(F.one_hot(tokens, self.cfg.num_classes).float())
        x = x + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def attention_maps(self, tokens) -> list[torch.Tensor]:
        """Per block, batch x heads x n x n attention maps (manual path), in eval mode."""
        x = (
            self.embed(F.one_hot(tokens, self.cfg.num_classes).float())
            + self.pos[: tokens.shape[1]]
        )
        maps = []
        for block in self.blocks:
            _, attn = block.attn(x, need_weights=True)
            maps.append(attn)
            x = block(x)
        return maps
