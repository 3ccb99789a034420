"""Getting data files into the data folder, for images and text alike: fetch (from a URL or a local
folder, with retries), verify (sha256 or md5 against recorded sums), stage (temporary folder beside
the data folder, renamed into place only when every file passed) and the manifest the data rules
write, which every job checks the files against before reading them (verified_root).

The format modules (vision, text) say which files a dataset has, their sums and how to read them;
nothing here knows a dataset. Nothing here modifies a file already in the data folder.

    python -m kvt.data.acquire stage DATASET FOLDER [--root DIR]   # stage one dataset, offline
    python -m kvt.data.acquire status [--root DIR]                 # what the data folder holds
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path


class ChecksumError(ValueError):
    """A file's sum differs from the recorded one: it is truncated or altered."""


class FetchError(RuntimeError):
    """A file could not be obtained from its source (network failure, missing local copy)."""


class DataMissingError(FileNotFoundError):
    """Files a dataset needs are not under the data folder."""


class DataCorruptError(RuntimeError):
    """A dataset file exists but cannot be read, or is not the official file."""


# ---------------------------------------------------------------------------------------------
# Verify


def digest(path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256(path) -> str:
    return digest(path, "sha256")


def file_record(path, sha: str | None = None) -> dict:
    """A manifest's entry of one file: {sha256, bytes} (sha: its sum when already computed)."""
    return {"sha256": sha or sha256(path), "bytes": Path(path).stat().st_size}


def manifest(root, source: str, files: dict, **names) -> dict:
    """The data rule's manifest: {<names>, root, source, files: {rel: {sha256, bytes, ...}}}."""
    return {**names, "root": str(root), "source": source, "files": files}


@lru_cache(maxsize=8)
def verified_root(manifest: str) -> Path:
    """The data folder of a data rule's manifest, after checking that every file it lists is still
    there with its recorded sha256 (once per process)."""
    info = json.loads(Path(manifest).read_text())
    root = Path(info["root"])
    for rel, meta in info["files"].items():
        if not isinstance(meta, dict) or "sha256" not in meta:
            raise ChecksumError(
                f"{manifest} records no sha256 for {rel} (an older format): delete "
                "it and rerun the pipeline to check the files again"
            )
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} (listed in {manifest}) is missing; stage it again, or "
                "delete the manifest and rerun the data rule"
            )
        if sha256(path) != meta["sha256"]:
            raise ChecksumError(
                f"{path} changed since the data rule checked it (sha256 differs "
                f"from {manifest}); it was not used. Restore it or delete it and "
                "the manifest to fetch it again."
            )
    return root


# ---------------------------------------------------------------------------------------------
# Place: nothing half-written ever sits at a final path


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to path through a temporary file in the same folder, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


@contextmanager
def scratch(root: Path, label: str):
    """A temporary folder beside root (the same filesystem, so os.replace out of it is atomic),
    removed on exit whatever happened."""
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.{label}-", dir=root.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_into(tmp: Path, root: Path, rels) -> list[Path]:
    """Rename the files `rels` from tmp to the same relative paths under root."""
    placed = []
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, root / rel)
        placed.append(root / rel)
    return placed


# ---------------------------------------------------------------------------------------------
# Fetch

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(base) -> bool:
    return bool(_URL.match(str(base)))


def source_path(base, rel: str) -> str:
    """Where `rel` is under `base`: a URL (http://, https://, file://) or a local folder."""
    base = str(base)
    if not is_url(base):
        return str(Path(base) / rel)
    if not base.lower().startswith(("http://", "https://", "file://")):
        raise ValueError(
            f"base {base!r}: only http://, https://, file:// URLs or a local folder are supported"
        )
    return f"{base.rstrip('/')}/{rel}"


def _copy_hashing(src, dst, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    for chunk in iter(lambda: src.read(1 << 20), b""):
        h.update(chunk)
        dst.write(chunk)
    return h.hexdigest()


class GaveUp(Exception):
    """`retry` stopped: `error` is the last attempt's, after `tries` attempts."""

    def __init__(self, error: BaseException, tries: int):
        super().__init__(
            f"{tries} {'try' if tries == 1 else 'tries'}: {type(error).__name__}: {error}"
        )
        self.error, self.tries = error, tries


def retry(
    attempt,
    *,
    retries: int,
    wait: float,
    errors=(OSError, http.client.HTTPException),
    retryable=lambda error: True,
):
    """attempt()'s result, calling it up to `retries` times, `wait` seconds apart, while it raises
    one of `errors` that `retryable` accepts; then raise GaveUp (from the last error). Any other
    error propagates at once."""
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    for tries in range(1, retries + 1):
        if tries > 1:
            time.sleep(wait)
        try:
            return attempt()
        except errors as e:
            if tries == retries or not retryable(e):
                raise GaveUp(e, tries) from e


def _retryable(error: BaseException, source: str) -> bool:
    """Only network errors of http(s) are worth another try: a local file will not appear, and
    not found / forbidden stay so."""
    if isinstance(error, urllib.error.HTTPError) and 400 <= error.code < 500:
        return False
    return source.lower().startswith(("http://", "https://"))


def _copy_checked(source: str, dest: Path, expected: str, algorithm: str) -> Path:
    """One try: source -> a temporary file beside dest -> checked -> renamed to dest."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if is_url(source):
                with urllib.request.urlopen(source, timeout=60) as response:
                    actual = _copy_hashing(response, out, algorithm)
            else:
                with open(source, "rb") as src:
                    actual = _copy_hashing(src, out, algorithm)
        if actual != expected:
            raise ChecksumError(
                f"{source} is truncated or altered: {algorithm} {actual}, expected {expected}. "
                f"Nothing was written to {dest}; fix or replace the source."
            )
        os.replace(tmp, dest)  # atomic: same folder, same filesystem
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    source: str,
    dest,
    expected: str,
    *,
    algorithm: str = "sha256",
    retries: int = 3,
    wait: float = 5.0,
    hint: str = "",
) -> Path:
    """dest, present and matching `expected` (its `algorithm` sum).

    An existing file is verified, never replaced: a mismatch raises ChecksumError (delete the file
    to fetch it again). A missing one is copied from `source` (source_path: a URL or a local file)
    into a temporary file beside dest, checked, and only then renamed into place, so dest never
    holds a partial or wrong file. Network errors are retried `retries` times, `wait` seconds
    apart; a wrong sum is not retried. hint: what to do instead, added to a FetchError.
    """
    dest = Path(dest)
    if dest.exists():
        actual = digest(dest, algorithm)
        if actual != expected:
            raise ChecksumError(
                f"{dest} is truncated or altered: {algorithm} {actual}, expected {expected}. It was "
                "not used. Delete it to fetch it again."
            )
        return dest
    if not is_url(source) and not Path(source).is_file():
        raise FetchError(
            f"cannot fetch {source}: it does not exist; destination {dest} was not "
            f"written. {hint}".rstrip()
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return retry(
            lambda: _copy_checked(source, dest, expected, algorithm),
            retries=retries,
            wait=wait,
            retryable=lambda e: _retryable(e, source),
        )
    except GaveUp as e:  # URLError, HTTPError, timeouts, short reads
        raise FetchError(
            f"could not fetch {source} ({e}). Destination {dest} was not written. {hint}".rstrip()
        ) from e.error


def stage_command(dataset: str, root="data", folder: str = "FOLDER", python: str = "python") -> str:
    """The command that stages `dataset` into the data folder root from a local folder."""
    return f"{python} -m kvt.data.acquire stage {dataset} {folder} --root {root}"


if __name__ == "__main__":  # the command line: kvt.data.commands (not part of any job's code)
    from kvt.data.commands import main

    sys.exit(main())
