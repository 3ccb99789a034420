"""After `make run`: the datasets the run could not prepare, each with the one command that stages
it from a local folder. Offline, Snakemake keeps going past a failed data job (every job that does
not need that dataset still runs); this says at the end what is missing and how to supply it.

    python -m kvt.missing_data [--since EPOCH] [KEY=VALUE ...] [snakemake arguments]

Read from the files the data jobs leave, not from the config's families: a data job writes its log
(<results>/logs/data/<dataset>.log) when it starts and its manifest (<results>/data/<dataset>.json)
when it succeeds, and Snakemake deletes the manifest of a failed job. So a log without a manifest
is a dataset that failed. --since (seconds since the epoch) ignores logs older than the run, left
by an earlier run for a dataset this one did not ask for. Always exits 0: `make run` keeps
Snakemake's exit status.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def failed(results, since: float = 0.0) -> list[str]:
    """Datasets whose data job wrote a log at or after `since` but left no manifest, sorted."""
    results = Path(results)
    logs = sorted((results / "logs" / "data").glob("*.log"))
    return [
        log.stem
        for log in logs
        if log.stat().st_mtime >= since and not (results / "data" / f"{log.stem}.json").is_file()
    ]


def folder_holds(dataset: str) -> str | None:
    """What the folder given to `kvt.data.acquire stage` must hold for `dataset`, or None where
    the dataset is not staged from a folder. The file names come from the data modules' own tables
    (torchvision's archive list for images, the recorded raw-file paths for text)."""
    from .data import text

    if dataset in text.DATASET_SOURCES:
        paths = [text.SOURCES[name][0] for name in text.DATASET_SOURCES[dataset]]
        return "a mirror laid out like the raw-file URLs: FOLDER/" + ", FOLDER/".join(paths)
    from .data import vision

    spec = vision.DATASETS.get(dataset)
    if spec is None or spec.tv_class is None:  # digits comes inside scikit-learn's wheel
        return None
    return "the publishers' archives: " + ", ".join(vision.archive_md5s(dataset))


# The line of a Python traceback that names the exception, e.g. "RuntimeError: dataset mnist: ...".
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*:")


def why(log: Path) -> str:
    """The reason in a data job's log: the last exception line, else the last non-empty line,
    shortened to fit a terminal line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION.match(line)]
    text = errors[-1] if errors else lines[-1] if lines else "(empty log)"
    return text if len(text) <= 160 else text[:157] + "..."


def python_command() -> str:
    """This interpreter as the user would type it: `.venv/bin/python` from the repository root."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return "python"


def report(results, data_dir: str, since: float = 0.0) -> str:
    """The end-of-run message ('' when every data job that ran left its manifest)."""
    from .data.acquire import stage_command

    results = Path(results)
    names = failed(results, since)
    if not names:
        return ""
    lines = [
        (
            f"kvt: {len(names)} dataset(s) could not be prepared, so the jobs that need them "
            "did not run (every other job did):"
        )
    ]
    for name in names:
        log = results / "logs" / "data" / f"{name}.log"
        lines.append(f"  {name}: its data job failed ({log}: {why(log)})")
        holds = folder_holds(name)
        if holds is None:
            lines.append(f"    not staged from a folder: see {log}")
            continue
        lines.append(f"    stage it: {stage_command(name, data_dir, python=python_command())}")
        lines.append(f"    FOLDER holds {holds}")
    lines.append(
        "  Then run the same command again: what finished is not run again. "
        "docs/data.md: where each dataset comes from."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    from .config import ConfigError, load_config, parse_overrides

    args = list(sys.argv[1:] if argv is None else argv)
    since = 0.0
    if "--since" in args:
        at = args.index("--since")
        since = float(args[at + 1])
        del args[at : at + 2]
    try:
        config = load_config(parse_overrides(args, strict=False))
    except ConfigError:
        return 0  # Snakemake has already reported the configuration error
    message = report(config["results"], config["data"]["dir"], since)
    if message:
        print(message, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
