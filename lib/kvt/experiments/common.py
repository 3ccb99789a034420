"""Helpers the family runtimes share."""

from dataclasses import fields


def fields_from(cls, hp: dict, **extra):
    """A config dataclass filled from a run's hparams by field name (each name written once)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in {**hp, **extra}.items() if k in names})
