"""The synthetic family's runtime (declaration: kvt.families.synthetic): model, data, step."""

import torch.nn.functional as F

from ..data.synthetic import make_split
from ..models.config import fields_from
from ..models.synthetic import SequenceClassifier, SyntheticModelConfig
from ..trainer import TensorBatches
from .base import Experiment

EVAL_BATCH = 512
SELECT_ON = ("val_acc", "max")
TRAIN = {"optimizer": "adam", "schedule": "cosine"}


def build_model(hp: dict) -> SequenceClassifier:
    return SequenceClassifier(fields_from(SyntheticModelConfig, hp))


def step(model, batch) -> dict:
    """Per-token cross-entropy (the batch mean) and the number of correct tokens."""
    x, y = batch
    logits = model(x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    return {"loss": loss, "count": y.numel(), "acc": (logits.argmax(-1) == y).sum()}


def train_data(hp: dict, inputs: dict) -> TensorBatches:
    split = make_split(hp["task"], "train", hp["train_size"], hp["seq_len"], hp["seed"])
    return TensorBatches(split, hp["batch_size"], hp["seed"])


def eval_data(hp: dict, split: str, inputs: dict):
    x, y = make_split(hp["task"], split, hp[f"{split}_size"], hp["seq_len"], hp["seed"])
    return lambda: (
        (x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)
    )


class Synthetic(Experiment):
    """The synthetic sequence tasks (kvt.experiments.base)."""

    build_model = staticmethod(build_model)
    train_data = staticmethod(train_data)
    eval_data = staticmethod(eval_data)
    step = staticmethod(step)

    def example_tokens(self, hp: dict, inputs: dict, example: tuple) -> list[str]:
        """The example's input digits."""
        return [str(d) for d in example[0][0].tolist()]

    def random_batch(self, hp: dict, generator):
        """A batch of the task's own sequences (they are generated, not read)."""
        return make_split(hp["task"], "train", hp["batch_size"], hp["seq_len"], hp["seed"])

    def select_on(self, hp: dict) -> tuple[str, str]:
        return SELECT_ON

    def train_settings(self, hp: dict) -> dict:
        return TRAIN


EXPERIMENT = Synthetic()
