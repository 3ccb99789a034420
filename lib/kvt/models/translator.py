"""Encoder-decoder Transformer of the Multi30k translation task (Annotated Transformer layout).

docs/protocol.md's setup (pre-norm, final LayerNorm on both stacks, embeddings x sqrt(d), sinusoidal
positions, FFN 4d ReLU, dropout 0.1, Noam, label smoothing, xavier on every >1-dim parameter) is
the Annotated Transformer's; its attention also drops the attention weights at the model rate, so
`attn_dropout = dropout` here. Source and target have their own embeddings over one joint
vocabulary. Cross-attention of the kv variants follows `cfg.cross` (docs/attention.md), fixed when the
module is built: equal source and target lengths still attend to the encoder states.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import CROSS_MODES, build_attention, make_mask
from ..positional import sinusoid_1d
from ..settings import AttentionSettings
from .blocks import Block
from .config import fixed


@dataclass
class TranslatorConfig(AttentionSettings):
    attention: str
    vocab_size: int  # one joint source/target vocabulary
    d_model: int = 64
    depth: int = 2  # layers of each stack
    heads: int = 1
    dropout: float = 0.1
    cross: str = (
        "qk"  # kv variants' cross-attention: "qk" or "kk" (docs/attention.md); qkv ignores it
    )
    max_len: int = 128  # longest source or target sequence, specials included
    pad_id: int = fixed(0)
    bos_id: int = fixed(2)
    eos_id: int = fixed(3)


class DecoderBlock(nn.Module):
    """x = x + drop(self_attn(LN x)); x = x + drop(cross_attn(LN x, memory)); x = x + drop(mlp(LN x))."""

    def __init__(self, cfg: TranslatorConfig, **attention_options):
        super().__init__()
        d = cfg.d_model
        self.self_attn = build_attention(cfg.attention, d, cfg.heads, **attention_options)
        self.cross_attn = build_attention(
            cfg.attention, d, cfg.heads, cross=cfg.cross, **attention_options
        )
        self.mlp = nn.Sequential(
            nn.Linear(d, 4 * d), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(4 * d, d)
        )
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, memory, self_mask=None, cross_mask=None, need_weights: bool = False):
        """Returns (x, cross-attention maps or None)."""
        x = x + self.drop(self.self_attn(self.norm1(x), mask=self_mask))
        out = self.cross_attn(
            self.norm2(x), mask=cross_mask, context=memory, need_weights=need_weights
        )
        out, maps = out if need_weights else (out, None)
        x = x + self.drop(out)
        return x + self.drop(self.mlp(self.norm3(x))), maps


class Translator(nn.Module):
    """src (B x S ids), tgt_in (B x T ids, starting with <bos>) -> B x T x vocab next-token logits."""

    def __init__(self, cfg: TranslatorConfig):
        super().__init__()
        if cfg.cross not in CROSS_MODES:
            raise ValueError(f"cross must be one of {CROSS_MODES}, got {cfg.cross!r}")
        self.cfg = cfg
        d = cfg.d_model
        options = dict(
            bias=True, max_len=cfg.max_len, attn_dropout=cfg.dropout, **cfg.attention_options()
        )
        self.src_embedding = nn.Embedding(cfg.vocab_size, d)
        self.tgt_embedding = nn.Embedding(cfg.vocab_size, d)
        self.register_buffer("pos_table", sinusoid_1d(cfg.max_len, d), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(
            Block(
                cfg.attention,
                d,
                cfg.heads,
                4 * d,
                dropout=cfg.dropout,
                activation=nn.ReLU,
                post_norm=False,
                **options,
            )
            for _ in range(cfg.depth)
        )
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(DecoderBlock(cfg, **options) for _ in range(cfg.depth))
        self.decoder_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size)
        self.init_weights()

    def init_weights(self):
        """docs/protocol.md: xavier_uniform on every >1-dim parameter, biases at PyTorch's defaults.
        The attention modules zero their biases: reset every Linear first to restore them."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _embed(self, ids, table: nn.Embedding, what: str):
        if ids.dim() != 2:
            raise ValueError(f"expected {what} token ids of shape B x L, got {tuple(ids.shape)}")
        n = ids.shape[1]
        if n > self.cfg.max_len:
            raise ValueError(f"{what} sequence of {n} tokens exceeds max_len={self.cfg.max_len}")
        return self.drop(table(ids) * math.sqrt(self.cfg.d_model) + self.pos_table[:n])

    def encode(self, src):
        """(memory B x S x d, src_pad B x S, True at <pad>)."""
        src_pad = src == self.cfg.pad_id
        x = self._embed(src, self.src_embedding, "source")
        mask = make_mask(src.shape[1], key_padding=src_pad)
        for block in self.encoder:
            x = block(x, mask=mask)
        return self.encoder_norm(x), src_pad

    def _decode(self, tgt_in, memory, src_pad, need_weights=False):
        t = tgt_in.shape[1]
        x = self._embed(tgt_in, self.tgt_embedding, "target")
        self_mask = make_mask(
            t, causal=True, key_padding=tgt_in == self.cfg.pad_id, device=x.device
        )
        cross_mask = make_mask(t, memory.shape[1], key_padding=src_pad)
        maps = []
        for block in self.decoder:
            x, m = block(x, memory, self_mask, cross_mask, need_weights)
            maps.append(m)
        return self.head(self.decoder_norm(x)), maps

    def decode(self, tgt_in, memory, src_pad):
        return self._decode(tgt_in, memory, src_pad)[0]

    def forward(self, src, tgt_in):
        return self.decode(tgt_in, *self.encode(src))

    @torch.no_grad()
    def cross_attention(self, src, tgt_in) -> list[torch.Tensor]:
        """Per decoder layer, the B x heads x T x S cross-attention maps (eval mode, for figures)."""
        was_training = self.training
        self.eval()
        try:
            return self._decode(tgt_in, *self.encode(src), need_weights=True)[1]
        finally:
            self.train(was_training)

    # --- decoding. Output format (greedy and beam): B x L generated ids, <bos> not included; each
    # row ends with its <eos> (if produced within max_new) followed by <pad>; L = longest row.
    # <pad> and <bos> are never generated; scores are the model's log-probs (full softmax).

    def _check_decoding(self, max_new: int):
        if not 0 <= max_new <= self.cfg.max_len:
            raise ValueError(
                f"max_new={max_new} must be in [0, max_len={self.cfg.max_len}] "
                f"(the decoder sees <bos> plus max_new - 1 tokens)"
            )

    def _next_logprobs(self, ys, memory, src_pad):
        logp = F.log_softmax(self.decode(ys, memory, src_pad)[:, -1].float(), dim=-1)
        logp[:, [self.cfg.pad_id, self.cfg.bos_id]] = float("-inf")
        return logp

    def _start(self, src, rows: int):
        return torch.full((rows, 1), self.cfg.bos_id, dtype=torch.long, device=src.device)

    @torch.no_grad()
    def greedy(self, src, max_new: int) -> torch.Tensor:
        """Batched greedy decoding (eval mode); stops when every sentence has produced <eos>."""
        self._check_decoding(max_new)
        was_training = self.training
        self.eval()
        try:
            memory, src_pad = self.encode(src)
            ys = self._start(src, src.shape[0])
            done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
            for _ in range(max_new):
                nxt = self._next_logprobs(ys, memory, src_pad).argmax(-1)
                nxt = nxt.masked_fill(done, self.cfg.pad_id)
                ys = torch.cat((ys, nxt[:, None]), dim=1)
                done |= nxt == self.cfg.eos_id
                if done.all():
                    break
            return ys[:, 1:]
        finally:
            self.train(was_training)

    @torch.no_grad()
    def beam_search(
        self, src, beam: int, max_new: int, length_penalty: float = 1.0
    ) -> torch.Tensor:
        """Beam search, batched over B * beam rows (eval mode). Beams are ranked by summed log-prob;
        a finished beam keeps its score (it continues with <pad> at no cost). The result of each
        sentence is its final beam with the best score / length**length_penalty, length counting
        the generated tokens up to and including <eos>. beam=1 is greedy decoding."""
        if beam < 1:
            raise ValueError(f"beam must be at least 1, got {beam}")
        self._check_decoding(max_new)
        was_training = self.training
        self.eval()
        try:
            b, v, cfg = src.shape[0], self.cfg.vocab_size, self.cfg
            memory, src_pad = self.encode(src)
            memory, src_pad = memory.repeat_interleave(beam, 0), src_pad.repeat_interleave(beam, 0)
            ys = self._start(src, b * beam)
            score = torch.full((b, beam), float("-inf"), device=src.device)
            score[:, 0] = 0.0  # one live hypothesis at the start
            done = torch.zeros(b, beam, dtype=torch.bool, device=src.device)
            for _ in range(max_new):
                logp = self._next_logprobs(ys, memory, src_pad).view(b, beam, v)
                finished = torch.full((v,), float("-inf"), device=src.device)
                finished[cfg.pad_id] = 0.0
                logp = torch.where(done[..., None], finished, logp)
                score, idx = (score[..., None] + logp).view(b, beam * v).topk(beam, dim=-1)
                origin, token = idx // v, idx % v
                rows = (origin + torch.arange(b, device=src.device)[:, None] * beam).view(-1)
                ys = torch.cat((ys[rows], token.view(-1, 1)), dim=1)
                done = done.gather(1, origin) | (token == cfg.eos_id)
                if done.all():
                    break
            out = ys[:, 1:].view(b, beam, -1)
            length = (out != cfg.pad_id).sum(-1).clamp(min=1).float()
            best = (score / length**length_penalty).argmax(-1)
            out = out[torch.arange(b, device=src.device), best]
            keep = int((out != cfg.pad_id).sum(-1).max()) if out.numel() else 0
            return out[:, :keep]
        finally:
            self.train(was_training)
