"""What the model configs share: the mark of a field that no run sets."""

from dataclasses import field

FIXED = "fixed"


def fixed(default):
    """A field of a model config that is a constant of the architecture (a class count, a special
    token's id), left at its default: kvt.experiments.common.fields_from does not ask the run's
    hparams for it. Every other field must come from them."""
    return field(default=default, metadata={FIXED: True})
