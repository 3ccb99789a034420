"""Decoder-only character-level GPT of the Shakespeare task (the reference's gpt_dev_pos.ipynb).

The paper's reference swapped the attention of that model; here it comes from the shared registry.
Token + learned position embeddings -> depth pre-norm blocks (FFN 4x ReLU) -> final LayerNorm ->
Linear head. Projections K/V(/Q) have no bias, the output projection has one (as the notebook's
Head / MultiHeadAttention). Dropout at the notebook's three sites and nowhere else: the attention
weights (the registry's `attn_dropout`), the attention output after its projection, and the
feed-forward's output (Linear, ReLU, Linear, Dropout); the embeddings and the feed-forward's hidden
layer are not dropped. Every variant gets the same causal mask, added after kv_pos's positional
term (docs/attention.md), so no variant can look ahead. Scale 'model' (the notebook's C**-0.5 with
C = n_embd) and one map_pos per head are the reference's choices (docs/protocol.md).
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..settings import AttentionSettings
from .blocks import Block


@dataclass
class GPTConfig(AttentionSettings):
    attention: str
    vocab_size: int
    block: int = 64  # context length
    d_model: int = 192
    depth: int = 6
    heads: int = 3
    dropout: float = 0.2


class CharGPT(nn.Module):
    """idx (B x T token ids, T <= block) -> B x T x vocab next-token logits."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.tok_embedding = nn.Embedding(cfg.vocab_size, d)
        self.pos_embedding = nn.Embedding(cfg.block, d)
        self.blocks = nn.ModuleList(
            Block(
                cfg.attention,
                d,
                cfg.heads,
                4 * d,
                dropout=cfg.dropout,
                activation=nn.ReLU,
                post_norm=False,
                bias=False,
                out_bias=True,
                max_len=cfg.block,
                attn_dropout=cfg.dropout,
                **cfg.attention_options(),
            )
            for _ in range(cfg.depth)
        )
        for block in self.blocks:
            # The notebook's FeedFoward has no dropout after its ReLU (the shared Block has): an
            # Identity in its place keeps the Linear layers at mlp.0 and mlp.3 (checkpoint keys).
            block.mlp[2] = nn.Identity()
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2:
            raise ValueError(f"expected token ids of shape B x T, got {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.cfg.block:
            raise ValueError(
                f"sequence of {t} tokens exceeds the context length block={self.cfg.block}"
            )
        pos = torch.arange(t, device=idx.device)
        x = self.tok_embedding(idx) + self.pos_embedding(pos)  # not dropped (the notebook)
        for block in self.blocks:
            x = block(x, causal=True)  # SDPA's causal kernels, not an n x n mask
        return self.head(self.norm(x))

    def generate(
        self,
        idx: torch.Tensor,
        new_tokens: int,
        generator: torch.Generator,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """idx followed by new_tokens sampled tokens (B x (T + new_tokens)). Each step sees only the
        last `block` tokens (the position embedding has no more rows). Sampling draws from
        `generator` alone, in eval mode (no dropout), so a seed fixes the sample; the training
        mode is restored afterwards."""
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                for _ in range(new_tokens):
                    logits = self(idx[:, -self.cfg.block :])[:, -1] / temperature
                    probs = logits.softmax(dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=generator)
                    idx = torch.cat((idx, nxt), dim=1)
        finally:
            self.train(was_training)
        return idx
