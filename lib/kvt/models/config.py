"""What the model configs share: the mark of a field that no run sets, and how a run's hparams
fill a model config."""

from dataclasses import field, fields

FIXED = "fixed"


def fixed(default):
    """A field of a model config that is a constant of the architecture (a class count, a special
    token's id), left at its default: `fields_from` does not ask the run's hparams for it. Every
    other field must come from them."""
    return field(default=default, metadata={FIXED: True})


def fields_from(cls, hp: dict, **extra):
    """A model config filled from a run's hparams and `extra` (what the runtime derives, e.g. from
    the dataset) by field name, each name written once. Every field must be given, except those
    marked `fixed` (constants of the architecture); a missing one is an error
    naming it, never a silent default. Hparams the model does not declare (data, optimiser
    settings) are left to the rest of the runtime."""
    given = {**hp, **extra}
    names = [f.name for f in fields(cls) if not f.metadata.get(FIXED)]
    missing = [n for n in names if n not in given]
    if missing:
        raise ValueError(
            f"{cls.__name__} needs {', '.join(missing)}, which the run's hparams "
            f"({hp.get('family', '?')} {hp.get('task', '')}) do not hold"
        )
    return cls(**{n: given[n] for n in names})
