"""Transformer blocks shared by the families, post-norm (synthetic) and pre-norm (the others)."""

from torch import nn

from ..attention import build_attention


class Block(nn.Module):
    """One encoder block around any registered attention variant.

    post_norm: x = LN(x + drop(attn(x))); x = LN(x + drop(mlp(x)))  (tutorial 6, synthetic)
    pre-norm:  x = x + drop(attn(LN(x))); x = x + drop(mlp(LN(x)))   (ViT, GPT, translation)
    """

    def __init__(
        self,
        attention: str,
        d_model: int,
        heads: int,
        mlp_dim: int,
        *,
        dropout: float = 0.0,
        activation: type[nn.Module] = nn.ReLU,
        post_norm: bool = False,
        **attention_options,
    ):
        super().__init__()
        self.post_norm = post_norm
        self.attn = build_attention(attention, d_model, heads, **attention_options)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_dim),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, d_model),
        )
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask=None, causal: bool = False):
        if self.post_norm:
            x = self.norm1(x + self.drop(self.attn(x, mask=mask, causal=causal)))
            return self.norm2(x + self.drop(self.mlp(x)))
        x = x + self.drop(self.attn(self.norm1(x), mask=mask, causal=causal))
        return x + self.drop(self.mlp(self.norm2(x)))
