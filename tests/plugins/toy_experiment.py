"""The toy experiment's runtime (declaration: toy_family.py): the synthetic family's model on
random tokens it must echo."""

import torch
import torch.nn.functional as F
from kvt.experiments.base import Experiment
from kvt.models.config import fields_from
from kvt.models.synthetic import SequenceClassifier, SyntheticModelConfig
from kvt.trainer import TensorBatches

SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


def _split(hp: dict, split: str):
    gen = torch.Generator().manual_seed(1000 * hp["seed"] + SPLIT_SEEDS[split])
    x = torch.randint(10, (hp[f"{split}_size"], hp["seq_len"]), generator=gen)
    return x, x.clone()


class Toy(Experiment):
    def build_model(self, hp):
        return SequenceClassifier(fields_from(SyntheticModelConfig, hp))

    def train_data(self, hp, inputs):
        return TensorBatches(_split(hp, "train"), hp["batch_size"], hp["seed"])

    def eval_data(self, hp, split, inputs):
        x, y = _split(hp, split)
        return lambda: iter([(x, y)])

    def step(self, model, batch):
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        return {"loss": loss, "count": y.numel(), "acc": (logits.argmax(-1) == y).sum()}

    def select_on(self, hp):
        return ("val_acc", "max")

    def train_settings(self, hp):
        return {"optimizer": "adam", "schedule": "constant"}

    def random_batch(self, hp, generator):
        x = torch.randint(10, (hp["batch_size"], hp["seq_len"]), generator=generator)
        return x, x.clone()


EXPERIMENT = Toy()
