"""The char-LM family's runtime (declaration: kvt.families.charlm): the char-level GPT on Tiny
Shakespeare, its data, step and sample."""

import math
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import text
from ..data.facts import FACTS
from ..models.config import fields_from
from ..models.gpt import CharGPT, GPTConfig
from .base import Experiment
from .text_data import text_fixture_inputs, verified_data_root

LN2 = math.log(2)
SAMPLE_PROMPT = "\n"  # the sample starts from a new line, like the reference's zero token
SELECT_ON = ("val_loss", "min")
TRAIN = {"optimizer": "adamw", "schedule": "constant"}


@lru_cache(maxsize=2)
def _chars(root: Path):
    return text.char_splits(text.read_shakespeare(root))


def chars(inputs: dict):
    """(vocabulary, train ids, val ids) of the data rule's text."""
    return _chars(verified_data_root(inputs, "a char-LM run"))


def data_facts(hp: dict, inputs: dict) -> dict:
    """What the model needs from the data (recorded in the run's hparams)."""
    return {"vocab_size": chars(inputs)[0].size}


def train_data(hp: dict, inputs: dict):
    return text.BlockBatches(chars(inputs)[1], hp["block"], hp["batch_size"], hp["seed"])


def _consecutive_blocks(ids: torch.Tensor, block: int, batch: int):
    """Every character of ids predicted once: non-overlapping blocks (and the tail)."""
    starts = list(range(0, len(ids) - 1, block))

    def batches():
        for i in range(0, len(starts), batch):
            chunk = [(s, min(block, len(ids) - 1 - s)) for s in starts[i : i + batch]]
            full = [s for s, n in chunk if n == block]
            if full:
                idx = torch.tensor(full)[:, None] + torch.arange(block)
                yield ids[idx], ids[idx + 1]
            for s, n in chunk:
                if n < block:
                    yield ids[None, s : s + n], ids[None, s + 1 : s + n + 1]

    return batches


def eval_data(hp: dict, split: str, inputs: dict):
    val = chars(inputs)[2]
    if split == "val":  # the protocol's estimate: fixed random blocks, the same for every run
        return text.fixed_batches(val, hp["block"], hp["batch_size"], hp["eval_batches"], seed=0)
    return _consecutive_blocks(val, hp["block"], 4 * hp["batch_size"])  # all of the val text


def build_model(hp: dict) -> CharGPT:
    return CharGPT(fields_from(GPTConfig, hp))


def step(model, batch) -> dict:
    """Mean cross-entropy per character, the character count, and bits per character."""
    x, y = batch
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    return {"loss": loss, "count": y.numel(), "bpc": loss.detach() * y.numel() / LN2}


def test_extras(model, hp: dict, inputs: dict, device, out_dir: Path) -> dict:
    """sample.txt: sample_chars characters generated from a new line (seeded by the run's seed).
    Writes only in out_dir."""
    vocab = chars(inputs)[0]
    gen = torch.Generator(device=device).manual_seed(hp["seed"])
    start = vocab.encode(SAMPLE_PROMPT)[None].to(device)
    ids = model.generate(start, hp["sample_chars"], gen)[0, len(SAMPLE_PROMPT) :]
    (out_dir / "sample.txt").write_text(vocab.decode(ids.cpu()), encoding="utf-8")
    return {}


class CharLM(Experiment):
    """The char-level GPT on Tiny Shakespeare (kvt.experiments.base)."""

    build_model = staticmethod(build_model)
    train_data = staticmethod(train_data)
    eval_data = staticmethod(eval_data)
    step = staticmethod(step)
    data_facts = staticmethod(data_facts)
    test_extras = staticmethod(test_extras)

    def fixture_inputs(self, hp: dict, root: Path) -> dict:
        return text_fixture_inputs(hp["task"], root)

    def bench_facts(self, hp: dict) -> dict:
        # Tiny Shakespeare's character vocabulary (the benchmarks' batches, without the text)
        return {"vocab_size": len(FACTS[hp["task"]].vocabulary)}

    def random_batch(self, hp: dict, generator):
        x = torch.randint(
            hp["vocab_size"], (hp["batch_size"], hp["block"] + 1), generator=generator
        )
        return x[:, :-1], x[:, 1:]

    def select_on(self, hp: dict) -> tuple[str, str]:
        return SELECT_ON

    def train_settings(self, hp: dict) -> dict:
        return TRAIN


EXPERIMENT = CharLM()
