"""What the two text experiments (charlm, translation) share: the text data rule's job, the
checked data folder of its manifest, and fixture inputs for their tests."""

import sys
from pathlib import Path


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
    from ..data.facts import to_record
    from ..jsonfiles import write_json
    from ..limits import check_measured

    p, dataset = job.params, job.wildcards.dataset
    info = text.prepare(
        dataset,
        p.root,
        base=p.base,
        download=p.download,
        fixtures=p.fixtures,
        retries=p.retries,
    )
    facts = text.measure(dataset, p.root)
    print(
        f"{info['task']}: {info['source']}, {len(info['files'])} files in {info['root']}; {facts}",
        file=sys.stderr,
    )
    # the settings from the resolved configuration, not params: a setting changed later reruns
    # no data rule (kvt.config.resolve has checked it against the declared facts)
    check_measured(job.config, dataset, facts)
    write_json({**info, "facts": to_record(facts)}, Path(job.output.manifest))
