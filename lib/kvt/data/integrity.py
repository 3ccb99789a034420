"""Data files checked by sha256: the data rules record each file's sum in a manifest, and every job
that reads the files checks them against it first, so a file truncated or altered after the data
rule ran stops the job before training, naming the file. Nothing here modifies a data file."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path


class ChecksumError(ValueError):
    """A file's sha256 differs from the recorded one: it is truncated or altered."""


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=8)
def verified_root(manifest: str) -> Path:
    """The data folder of a data rule's manifest, after checking that every file it lists is still
    there with its recorded sha256 (once per process)."""
    info = json.loads(Path(manifest).read_text())
    root = Path(info["root"])
    for rel, meta in info["files"].items():
        if not isinstance(meta, dict) or "sha256" not in meta:
            raise ChecksumError(f"{manifest} records no sha256 for {rel} (an older format): delete "
                                "it and rerun the pipeline to check the files again")
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path} (listed in {manifest}) is missing; stage it again, or "
                                    "delete the manifest and rerun the data rule")
        if sha256(path) != meta["sha256"]:
            raise ChecksumError(f"{path} changed since the data rule checked it (sha256 differs "
                                f"from {manifest}); it was not used. Restore it or delete it and "
                                "the manifest to fetch it again.")
    return root
