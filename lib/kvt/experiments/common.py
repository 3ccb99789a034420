"""Helpers the family runtimes share."""

import sys
from dataclasses import fields
from pathlib import Path

from ..models.config import FIXED


def fields_from(cls, hp: dict, **extra):
    """A model config filled from a run's hparams and `extra` (what the runtime derives, e.g. from
    the dataset) by field name, each name written once. Every field must be given, except those
    marked fixed (kvt.models.config: constants of the architecture); a missing one is an error
    naming it, never a silent default. Hparams the model does not declare (data, optimiser
    settings) are left to the rest of the runtime."""
    given = {**hp, **extra}
    names = [f.name for f in fields(cls) if not f.metadata.get(FIXED)]
    missing = [n for n in names if n not in given]
    if missing:
        raise ValueError(f"{cls.__name__} needs {', '.join(missing)}, which the run's hparams "
                         f"({hp.get('family', '?')} {hp.get('task', '')}) do not hold")
    return cls(**{n: given[n] for n in names})


def verified_data_root(inputs: dict, what: str) -> Path:
    """The data folder of the data rule's manifest (input 'data'), after checking every file it
    lists against the sum recorded there (a file altered since the data rule ran is never used)."""
    from ..data.integrity import verified_root

    if "data" not in inputs:
        raise ValueError(f"{what} needs the data rule's manifest as input 'data'")
    return verified_root(str(inputs["data"]))


def text_fixture_inputs(dataset: str, root) -> dict:
    """Fixture files of a text dataset under root/data and the data rule's manifest (tests)."""
    from ..data import text
    from ..jsonfiles import write_json

    info = text.prepare(dataset, Path(root) / "data", download=False, fixtures=True)
    manifest = Path(root) / f"{dataset}.json"
    write_json(info, manifest)
    return {"data": str(manifest)}


def text_data_job(job) -> None:
    """The data rule of a text dataset: its files present and checked (staged, fetched, or
    fixtures), and its manifest."""
    from ..data import text
    from ..jsonfiles import write_json

    p = job.params
    info = text.prepare(job.wildcards.dataset, p.root, base=p.base, download=p.download,
                        fixtures=p.fixtures, retries=p.retries)
    print(f"{info['task']}: {info['source']}, {len(info['files'])} files in {info['root']}",
          file=sys.stderr)
    write_json(info, Path(job.output.manifest))
