"""Small pre-norm Vision Transformer of the image-classification tasks (UvA tutorial 15 layout).

Head: docs/protocol.md's Linear(d, mlp_dim) -> GELU -> Linear(mlp_dim, classes) on the CLS token, with
no LayerNorm in front of it (tutorial 15 has LayerNorm -> Linear; the paper's reference code, which
docs/protocol.md follows, has the two-layer head). CLS token and position embedding start from randn
(tutorial 15); every other layer has PyTorch's default initialisation (docs/protocol.md).
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..settings import AttentionSettings
from .blocks import Block
from .config import fixed


@dataclass
class ViTConfig(AttentionSettings):
    attention: str
    image_size: int
    channels: int
    patch: int
    classes: int
    d_model: int
    depth: int
    heads: int
    mlp_dim: int | None = fixed(None)  # None: d_model (docs/protocol.md)
    dropout: float = fixed(0.0)


def image_to_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """B x C x H x W -> B x (H/p * W/p) x (C * p * p): patches in row-major order, each flattened
    channel first (as tutorial 15's img_to_patch)."""
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image of {h}x{w} pixels does not split into {patch}x{patch} patches")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


class VisionTransformer(nn.Module):
    """patches -> Linear(p*p*C, d), CLS token, learned positions -> depth pre-norm blocks ->
    head on the CLS token. The kv_pos positional table covers every token, CLS included; kv_rel
    gets the patch grid (2D offsets, the CLS token with entries of its own)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        if cfg.image_size % cfg.patch:
            raise ValueError(f"image_size={cfg.image_size} is not divisible by patch={cfg.patch}")
        self.cfg = cfg
        d = cfg.d_model
        mlp_dim = d if cfg.mlp_dim is None else cfg.mlp_dim
        side = cfg.image_size // cfg.patch
        self.n_patches = side**2
        self.patch_embed = nn.Linear(cfg.channels * cfg.patch**2, d)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d))
        self.pos_embedding = nn.Parameter(torch.randn(1, self.n_tokens, d))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(
                cfg.attention,
                d,
                cfg.heads,
                mlp_dim,
                dropout=cfg.dropout,
                activation=nn.GELU,
                post_norm=False,
                bias=False,
                out_bias=True,
                max_len=self.n_tokens,
                grid=(side, side),  # kv_rel's 2D patch offsets (other variants ignore it)
                **cfg.attention_options(),
            )
            for _ in range(cfg.depth)
        )
        self.head = nn.Sequential(nn.Linear(d, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, cfg.classes))

    @property
    def n_tokens(self) -> int:
        """Patches plus the CLS token."""
        return self.n_patches + 1

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """B x C x H x W floats -> B x n_tokens x d: CLS first, then the patches, plus positions."""
        expected = (self.cfg.channels, self.cfg.image_size, self.cfg.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape B x {' x '.join(map(str, expected))}, "
                f"got {tuple(images.shape)}"
            )
        x = self.patch_embed(image_to_patches(images, self.cfg.patch))
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return self.drop(x + self.pos_embedding)

    def forward(self, images):
        """images: B x C x H x W floats (normalised) -> B x classes logits."""
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.head(x[:, 0])

    def attention_maps(self, images) -> list[torch.Tensor]:
        """Per block, B x heads x n_tokens x n_tokens attention maps (manual path), computed in
        eval mode (the training mode is restored afterwards)."""
        was_training = self.training
        self.eval()
        try:
            x = self.embed(images)
            maps = []
            for block in self.blocks:
                _, attn = block.attn(block.norm1(x), need_weights=True)
                maps.append(attn)
                x = block(x)
        finally:
            self.train(was_training)
        return maps
