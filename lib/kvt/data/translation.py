"""Batches of translation pairs (Multi30k): encoding with the subword tokenizer, padding, seeded
resumable training batches (the trainer's contract: `steps_per_epoch` and `batches(start_step)`,
the batch of any step a pure function of (seed, step)) and fixed-order evaluation batches.

Padding is PAD (id 0) on the right; the loss and attention masks must ignore it.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from ..seeds import EPOCH_STRIDE, derived
from .tokenizer import BOS, EOS, PAD, Tokenizer

Batch = tuple[
    torch.Tensor, torch.Tensor, torch.Tensor
]  # (src B x S, tgt_in B x T-1, tgt_out B x T-1)


def encode_pairs(
    pairs: Sequence[tuple[str, str]], tok: Tokenizer, max_len: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(sources, targets) as 1-D LongTensors: source = ids + [EOS], target = [BOS] + ids + [EOS],
    each cut to at most max_len tokens with the final EOS kept (the model still learns to stop)."""
    if max_len < 2:
        raise ValueError(f"max_len={max_len}: a target needs at least BOS and EOS")
    src_ids = tok.encode([s for s, _ in pairs])
    tgt_ids = tok.encode([t for _, t in pairs])
    src = [torch.tensor(ids[: max_len - 1] + [EOS], dtype=torch.long) for ids in src_ids]
    tgt = [torch.tensor([BOS] + ids[: max_len - 2] + [EOS], dtype=torch.long) for ids in tgt_ids]
    return src, tgt


def pad(seqs: Sequence[torch.Tensor], pad_id: int = PAD) -> torch.Tensor:
    """B x L LongTensor, L the longest sequence, shorter ones right-padded with pad_id."""
    return torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True, padding_value=pad_id)


def _batch(src: Sequence[torch.Tensor], tgt: Sequence[torch.Tensor], idx) -> Batch:
    s = pad([src[i] for i in idx])
    t = pad([tgt[i] for i in idx])
    return s, t[:, :-1], t[:, 1:]  # teacher forcing: predict token k+1 from tokens <= k


def _check(src, tgt) -> None:
    if len(src) != len(tgt):
        raise ValueError(f"{len(src)} sources but {len(tgt)} targets")


class PairBatches:
    """Training batches of sentence pairs, shuffled per epoch by a generator seeded with
    seed * 100_003 + epoch (as trainer.TensorBatches), so a resumed run sees the same batches.
    Drops the last partial batch; each batch is padded to its own longest sequence."""

    def __init__(
        self, src: Sequence[torch.Tensor], tgt: Sequence[torch.Tensor], batch_size: int, seed: int
    ):
        _check(src, tgt)
        self.src, self.tgt, self.batch_size, self.seed = list(src), list(tgt), batch_size, seed
        self.steps_per_epoch = len(self.src) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.src)} training pairs make no batch of {batch_size}")

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(derived(self.seed, EPOCH_STRIDE, epoch))
        order = torch.randperm(len(self.src), generator=gen).tolist()
        for i in range(start, self.steps_per_epoch):
            yield _batch(self.src, self.tgt, order[i * self.batch_size : (i + 1) * self.batch_size])

    def batches(self, start_step: int = 0) -> Iterator[Batch]:
        """The batches of steps start_step, start_step + 1, ... (endless)."""
        epoch, start = divmod(start_step, self.steps_per_epoch)
        while True:
            yield from self.epoch(epoch, start)
            epoch, start = epoch + 1, 0


def eval_batches(
    src: Sequence[torch.Tensor], tgt: Sequence[torch.Tensor], batch_size: int
) -> Callable[[], Iterator[Batch]]:
    """A callable giving, each time, the same batches in data order, the last partial one included
    (every pair is scored, and hypotheses line up with the references)."""
    _check(src, tgt)
    src, tgt = list(src), list(tgt)

    def batches() -> Iterator[Batch]:
        for i in range(0, len(src), batch_size):
            yield _batch(src, tgt, range(i, min(i + batch_size, len(src))))

    return batches
