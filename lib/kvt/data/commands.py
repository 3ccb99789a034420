"""The command line of kvt.data.acquire: stage one dataset from a local folder, and what the data
folder holds. A module of its own, so that no job's code hash (kvt.codehash) counts the format
modules it reads through acquire.

    python -m kvt.data.acquire stage DATASET FOLDER [--root DIR]   # stage one dataset, offline
    python -m kvt.data.acquire status [--root DIR]                 # what the data folder holds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .acquire import ChecksumError, DataCorruptError, DataMissingError, FetchError, stage_command

# A dataset's state, from the states of its files (the format modules' file_states).
STATES = {
    "verified": "present and verified",
    "fixture": "fixtures (smoke preset / tests)",
    "missing": "missing",
    "corrupt": "corrupt",
}


def _formats() -> dict:
    """{dataset: its format module} of every dataset a data rule knows."""
    from . import text, vision

    return {
        **{name: vision for name in vision.DATASETS},
        **{name: text for name in text.DATASET_SOURCES},
    }


def dataset_state(states: dict[str, str]) -> str:
    """One word for a dataset from {rel: verified | fixture | missing | corrupt} of its files:
    corrupt if any file is, missing if any is (some present: say which in the details), else
    fixture if any is, else verified (also for a dataset without files)."""
    values = set(states.values())
    for state in ("corrupt", "missing", "fixture"):
        if state in values:
            return state
    return "verified"


def _default_root() -> Path:
    from ..config import ConfigError, load_config

    try:
        return Path(load_config()["data"]["dir"])
    except ConfigError as e:
        raise SystemExit(
            f"--root not given and the configuration cannot be read ({e}); give --root"
        ) from e


def _stage_command(args) -> int:
    formats = _formats()
    if args.dataset not in formats:
        print(f"unknown dataset {args.dataset!r}; known: {', '.join(formats)}", file=sys.stderr)
        return 2
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"{folder} is not a folder", file=sys.stderr)
        return 2
    root = Path(args.root) if args.root else _default_root()
    try:
        info = formats[args.dataset].stage_from(args.dataset, root, folder)
    except (DataMissingError, DataCorruptError, ChecksumError, FetchError) as e:
        print(f"{args.dataset}: not staged from {folder}.\n{e}", file=sys.stderr)
        return 1
    if not info["files"]:
        print(f"{args.dataset}: nothing to stage ({info['source']} data, no files)")
        return 0
    print(f"{args.dataset}: {len(info['files'])} file(s) present and verified in {root}:")
    for rel, meta in info["files"].items():
        print(f"  {rel}  sha256 {meta['sha256'][:12]}")
    return 0


def _status_command(args) -> int:
    root = Path(args.root) if args.root else _default_root()
    print(f"data folder {root}:")
    corrupt = False
    for name, module in _formats().items():
        states = module.file_states(name, root)
        if not states:
            print(f"  {name:14} no files (bundled with its library)")
            continue
        state = dataset_state(states)
        corrupt |= state == "corrupt"
        shown = [rel for rel, s in states.items() if s == state]
        count = f" ({len(shown)} of {len(states)} files)" if state in ("missing", "corrupt") else ""
        print(f"  {name:14} {STATES[state]}{count}")
        if state == "corrupt" or (state == "missing" and len(shown) < len(states)):
            print("".join(f"      {state}: {root / rel}\n" for rel in shown), end="")
        if state != "verified" and state != "fixture":
            print(f"      to stage: {stage_command(name, root)}")
    return 1 if corrupt else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kvt.data.acquire",
        description="Stage a dataset from a local folder; the data folder's state.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stage = commands.add_parser("stage", help="stage and verify one dataset from a local folder")
    stage.add_argument("dataset", help="a dataset of the data rules: " + ", ".join(_formats()))
    stage.add_argument(
        "folder",
        help="the publishers' image archives, or a text mirror laid out "
        "like the raw-file URLs (data.text_base)",
    )
    status = commands.add_parser(
        "status", help="per dataset: present and verified, missing, corrupt"
    )
    for sub in (stage, status):
        sub.add_argument("--root", help="the data folder (default: the configuration's data.dir)")
    args = parser.parse_args(argv)
    return _stage_command(args) if args.command == "stage" else _status_command(args)
