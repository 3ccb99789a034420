"""Text data for the NLP experiments: Tiny Shakespeare (character-level language model) and
Multi30k task 1 (German <-> English sentence pairs, read in either direction).

Files live under a data folder `root` at the same relative paths as their public raw-file URLs
(`<owner>/<repo>/<branch>/<path>`), so a mirror of the URLs, a download and a staged copy all look
alike. Each file is pinned by a sha256 recorded here: a file that does not match is never used.
Nothing here touches the network except `fetch`, which the pipeline's data rule calls.
Every training batch is a pure function of (seed, step), so a resumed run sees the same batches.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .integrity import ChecksumError, sha256  # noqa: F401  (part of this module's interface)

# ---------------------------------------------------------------------------------------------
# Sources: name -> (path relative to the raw-file root, sha256). The sums are those of the files
# the study used (the offline mirror's SHA256SUMS), recorded here so a changed upstream file or a
# damaged copy is caught rather than silently trained on.

DEFAULT_BASE = "https://raw.githubusercontent.com"
SHAKESPEARE = "karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
MULTI30K = "multi30k/dataset/master/data/task1/raw"
MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}

SOURCES: dict[str, tuple[str, str]] = {
    "tinyshakespeare": (SHAKESPEARE, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    "multi30k.train.de": (f"{MULTI30K}/train.de.gz", "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6"),
    "multi30k.train.en": (f"{MULTI30K}/train.en.gz", "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f"),
    "multi30k.val.de": (f"{MULTI30K}/val.de.gz", "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a"),
    "multi30k.val.en": (f"{MULTI30K}/val.en.gz", "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28"),
    "multi30k.test.de": (f"{MULTI30K}/test_2016_flickr.de.gz",
                         "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"),
    "multi30k.test.en": (f"{MULTI30K}/test_2016_flickr.en.gz",
                         "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"),
}


class FetchError(RuntimeError):
    """A file could not be obtained from its source (network failure, missing local copy)."""


def _expected(rel_path: str) -> str:
    """The recorded sha256 of rel_path (looked up at call time, so tests can add fixtures)."""
    for rel, digest in SOURCES.values():
        if rel == rel_path:
            return digest
    known = "\n".join(f"  {rel}" for rel, _ in SOURCES.values())
    raise KeyError(f"{rel_path!r} is not a known source; known:\n{known}")


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _copy_hashing(src, dst) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: src.read(1 << 20), b""):
        h.update(chunk)
        dst.write(chunk)
    return h.hexdigest()


def fetch(rel_path: str, base=DEFAULT_BASE, dest_root=".", *, retries: int = 3, wait: float = 5.0) -> Path:
    """dest_root/rel_path, present and matching its recorded sha256.

    An existing file is verified, never replaced: a mismatch raises ChecksumError (delete the file
    to fetch it again). A missing one is copied from `base` (a URL: http://, https://, file://; or
    a local folder laid out like the URLs) into a temporary file in the destination folder, checked,
    and only then renamed into place, so the final path never holds a partial or wrong file.
    Network errors are retried `retries` times, `wait` seconds apart; a wrong sum is not retried.
    """
    expected = _expected(rel_path)
    dest = Path(dest_root) / rel_path
    if dest.exists():
        actual = sha256(dest)
        if actual != expected:
            raise ChecksumError(
                f"{dest} is truncated or altered (it is not the recorded {rel_path}): sha256 {actual}, "
                f"expected {expected}. It was not used. Delete it to fetch it again.")
        return dest
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    base = str(base)
    is_url = bool(_URL.match(base))
    if is_url and not base.lower().startswith(("http://", "https://", "file://")):
        raise ValueError(f"base {base!r}: only http://, https://, file:// URLs or a local folder are supported")
    source = f"{base.rstrip('/')}/{rel_path}" if is_url else str(Path(base) / rel_path)
    if not is_url and not Path(source).is_file():
        raise FetchError(f"cannot fetch {rel_path}: {source} does not exist. `base` {base} must be a folder "
                         f"laid out like the raw-file URLs (<owner>/<repo>/<branch>/<path>); "
                         f"destination {dest} was not written.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    error: BaseException | None = None
    tries = 0
    for attempt in range(retries):
        tries += 1
        if attempt:
            time.sleep(wait)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if is_url:
                    with urllib.request.urlopen(source, timeout=60) as response:
                        actual = _copy_hashing(response, out)
                else:
                    with open(source, "rb") as src:
                        actual = _copy_hashing(src, out)
            if actual != expected:
                raise ChecksumError(
                    f"{source} is truncated or altered (it is not the recorded {rel_path}): sha256 "
                    f"{actual}, expected {expected}. Nothing was written to {dest}; fix or replace the source.")
            os.replace(tmp, dest)  # atomic: same folder, same filesystem
            return dest
        except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, timeouts, short reads
            error = e
            if isinstance(e, urllib.error.HTTPError) and 400 <= e.code < 500:
                break  # not found / forbidden: another try will not help
            if not is_url:
                break
        finally:
            tmp.unlink(missing_ok=True)
    raise FetchError(f"could not fetch {source} ({tries} {'try' if tries == 1 else 'tries'}): "
                     f"{type(error).__name__}: {error}. Destination {dest} was not written. "
                     f"Without network, point `base` at a local copy: a folder (or file:// URL) laid out "
                     f"like the URLs, holding {rel_path}.")


def fetch_all(base=DEFAULT_BASE, dest_root=".", names=None, *, retries: int = 3, wait: float = 5.0) -> dict:
    """Fetch the sources `names` (all by default); returns {rel_path: {"sha256", "bytes"}}, a manifest."""
    out = {}
    for name in names if names is not None else list(SOURCES):
        rel, digest = SOURCES[name]
        path = fetch(rel, base, dest_root, retries=retries, wait=wait)
        out[rel] = {"sha256": digest, "bytes": path.stat().st_size}
    return out


def _missing(path: Path, rel_path: str) -> FileNotFoundError:
    return FileNotFoundError(f"{path} does not exist. Run the data rule (kvt.data.text.fetch({rel_path!r}, "
                             f"base, root)) or copy it there from a machine that has it, same relative path.")


# ---------------------------------------------------------------------------------------------
# Character-level language model (Tiny Shakespeare)


def read_shakespeare(root) -> str:
    path = Path(root) / SHAKESPEARE
    if not path.is_file():
        raise _missing(path, SHAKESPEARE)
    return path.read_text(encoding="utf-8")


class CharVocab:
    """The sorted unique characters of a text (as the reference built it from the whole text, so
    ids match the reference's). `CharVocab(vocab.chars)` rebuilds the same vocabulary."""

    def __init__(self, text: str):
        self.chars = "".join(sorted(set(text)))
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.int64)  # sorted code points

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return self.size

    def encode(self, s: str) -> torch.Tensor:
        codes = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = np.searchsorted(self._codes, codes)
        bad = (ids >= self.size) | (self._codes[np.minimum(ids, self.size - 1)] != codes)
        if bad.any():
            unknown = sorted({chr(c) for c in codes[bad]})
            raise KeyError(f"characters not in the vocabulary: {unknown!r}")
        return torch.from_numpy(ids)

    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return "".join(self.chars[i] for i in ids)


def char_splits(text: str, train_fraction: float = 0.9) -> tuple[CharVocab, torch.Tensor, torch.Tensor]:
    """(vocab, train ids, val ids): the first train_fraction of the text trains, the rest validates
    (contiguous, as the reference split it: no shuffling, so val is unseen text)."""
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    n = int(train_fraction * len(ids))
    return vocab, ids[:n], ids[n:]


def _blocks(ids: torch.Tensor, offsets: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = offsets.unsqueeze(-1) + torch.arange(block)
    return ids[idx], ids[idx + 1]


def _check_len(ids: torch.Tensor, block: int) -> None:
    if len(ids) <= block:
        raise ValueError(f"{len(ids)} tokens make no block of {block} (+1 target)")


class BlockBatches:
    """Training batches of random contiguous blocks: x = ids[i:i+block], y = ids[i+1:i+block+1].

    The offsets of global step s come from a generator seeded with seed * 1_000_003 + s, so the
    batch of any step is recreated after a restart. There are no epochs (training length is given
    in iterations), hence steps_per_epoch = None.
    """

    steps_per_epoch = None

    def __init__(self, ids: torch.Tensor, block: int, batch_size: int, seed: int):
        _check_len(ids, block)
        self.ids, self.block, self.batch_size, self.seed = ids, block, batch_size, seed

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        offsets = torch.randint(len(self.ids) - self.block, (self.batch_size,), generator=gen)
        return _blocks(self.ids, offsets, self.block)

    def batches(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless batches of global steps start_step, start_step + 1, ..."""
        step = start_step
        while True:
            yield self.batch(step)
            step += 1


def fixed_batches(ids: torch.Tensor, block: int, batch_size: int, n_batches: int,
                  seed: int = 0) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A callable giving, each time, the same n_batches batches (offsets drawn once from a generator
    seeded with `seed`): every variant and seed is then scored on the same text."""
    _check_len(ids, block)
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.randint(len(ids) - block, (n_batches, batch_size), generator=gen)

    def batches():
        for row in offsets:
            yield _blocks(ids, row, block)

    return batches


# ---------------------------------------------------------------------------------------------
# Multi30k sentence pairs


def read_lines(path_gz) -> list[str]:
    """The lines of a gzipped utf-8 file, newlines (and a CR before them) stripped. Splits on
    "\\n" only (not on a lone "\\r" or Unicode line separators, as str.splitlines would), so
    line i of one side pairs with line i of the other."""
    with gzip.open(path_gz, "rt", encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]  # CRLF files


def _side(root, split: str, lang: str) -> tuple[Path, list[str]]:
    if split not in MULTI30K_SPLITS:
        raise ValueError(f"unknown Multi30k split {split!r}; known: {', '.join(MULTI30K_SPLITS)}")
    rel = f"{MULTI30K}/{MULTI30K_SPLITS[split]}.{lang}.gz"
    path = Path(root) / rel
    if not path.is_file():
        raise _missing(path, rel)
    return path, read_lines(path)


def read_side(root, split: str, lang: str) -> list[str]:
    """The `lang` sentences of a Multi30k task-1 split (train, val, test = test_2016_flickr)."""
    return _side(root, split, lang)[1]


def read_pairs(root, split: str, src: str = "de", tgt: str = "en") -> list[tuple[str, str]]:
    """[(source sentence, target sentence)] of a Multi30k task-1 split (train, val, test =
    test_2016_flickr) under the data folder root (URL layout, as `fetch` writes it)."""
    (p_src, s), (p_tgt, t) = _side(root, split, src), _side(root, split, tgt)
    if len(s) != len(t):
        raise ValueError(f"Multi30k {split}: {p_src} has {len(s)} lines but {p_tgt} has {len(t)}; "
                         f"the sides must be line-aligned (a truncated or mismatched file?)")
    return list(zip(s, t))


# ---------------------------------------------------------------------------------------------
# Fixtures: small synthetic stand-ins in the real on-disk formats (smoke preset, tests). Their sums
# are not the recorded ones; callers that verify sums must register or skip them.

_PLAY_NAMES = ["First Citizen", "Second Citizen", "Menenius", "Marcius", "Volumnia", "All"]
_PLAY_WORDS = ("the and of to my i you that is in not be me it with your his this but for have he "
               "what so will as our lord good king thy thee shall love come speak now well here "
               "let must we no make more than all say know why tell hear").split()
# Parallel German/English pieces, so a model can learn a word-for-word mapping (with agreement).
# nouns: (de singular, de plural, gender, en singular, en plural)
_NOUNS = [("Hund", "Hunde", "m", "dog", "dogs"), ("Mann", "Männer", "m", "man", "men"),
          ("Junge", "Jungen", "m", "boy", "boys"), ("Frau", "Frauen", "f", "woman", "women"),
          ("Katze", "Katzen", "f", "cat", "cats"), ("Kind", "Kinder", "n", "child", "children"),
          ("Mädchen", "Mädchen", "n", "girl", "girls")]
_ADJECTIVES = [("groß", "big"), ("klein", "small"), ("braun", "brown"), ("jung", "young"), ("alt", "old")]
_NUMBERS = [("Zwei", "Two"), ("Drei", "Three")]
_VERBS = [("läuft", "laufen", "runs", "run"), ("springt", "springen", "jumps", "jump"),
          ("sitzt", "sitzen", "sits", "sit"), ("schläft", "schlafen", "sleeps", "sleep"),
          ("spielt", "spielen", "plays", "play"), ("steht", "stehen", "stands", "stand")]
_PLACES = [("im Park", "in the park"), ("am Strand", "on the beach"), ("auf der Straße", "on the street"),
           ("im Schnee", "in the snow"), ("im Wasser", "in the water"), ("vor dem Haus", "in front of the house")]
FIXTURE_SIZES = {"train": 400, "val": 60, "test": 60}


def _pick(rng, items):
    return items[int(rng.random() * len(items))]  # random() only: its sequence is stable across Pythons


def _fixture_play(rng, n_chars: int = 8000) -> str:
    speeches = []
    while sum(map(len, speeches)) < n_chars:
        lines = []
        for _ in range(1 + int(rng.random() * 3)):
            words = [_pick(rng, _PLAY_WORDS) for _ in range(4 + int(rng.random() * 6))]
            lines.append(" ".join(words).capitalize() + _pick(rng, [",", ".", ";", "!", "?", "."]))
        speeches.append(f"{_pick(rng, _PLAY_NAMES)}:\n" + "\n".join(lines) + "\n\n")
    return "".join(speeches)[:-1]  # ends with a single newline, as the real file


def _fixture_pair(rng) -> tuple[str, str]:
    de_sg, de_pl, gender, en_sg, en_pl = _pick(rng, _NOUNS)
    adj = _pick(rng, [None] + _ADJECTIVES)
    plural = rng.random() < 0.3
    if plural:
        num_de, num_en = _pick(rng, _NUMBERS)
        de = [num_de] + ([adj[0] + "e"] if adj else []) + [de_pl]
        en = [num_en] + ([adj[1]] if adj else []) + [en_pl]
    else:
        de = [{"m": "Ein", "f": "Eine", "n": "Ein"}[gender]] + ([adj[0] + {"m": "er", "f": "e", "n": "es"}[gender]]
                                                                 if adj else []) + [de_sg]
        en = ["An" if adj and adj[1][0] in "aeiou" else "A"] + ([adj[1]] if adj else []) + [en_sg]
    verb, place = _pick(rng, _VERBS), _pick(rng, _PLACES)
    de += [verb[1] if plural else verb[0], place[0]]
    en += [verb[3] if plural else verb[2], place[1]]
    return " ".join(de) + ".", " ".join(en) + "."


def write_fixtures(root, seed: int = 0) -> dict:
    """Write synthetic Tiny Shakespeare and Multi30k (train/val/test, de/en, gzipped, line-aligned,
    distinct pairs in every split) files under `root` at the sources' relative paths; returns their
    manifest {rel_path: {"sha256", "bytes"}}. Same seed, same bytes (gzip without name or time).
    Refuses a folder that already holds any of those files: real data is never overwritten."""
    import random  # local: this section only

    root = Path(root)
    targets = [root / rel for rel, _ in SOURCES.values()]
    present = [str(p) for p in targets if p.exists()]
    if present:
        raise FileExistsError(f"write_fixtures({root}): refusing to overwrite existing data files "
                              f"(fixtures go in a folder of their own): {', '.join(present)}")
    rng = random.Random(seed)
    files = {SHAKESPEARE: _fixture_play(rng).encode("utf-8")}
    pairs, seen = [], set()
    while len(pairs) < sum(FIXTURE_SIZES.values()):
        pair = _fixture_pair(rng)
        if pair not in seen:  # distinct pairs: val/test sentences are unseen in train
            seen.add(pair)
            pairs.append(pair)
    start = 0
    for split, n in FIXTURE_SIZES.items():
        chunk = pairs[start:start + n]
        start += n
        for i, lang in enumerate(("de", "en")):
            text = "".join(pair[i] + "\n" for pair in chunk)
            files[f"{MULTI30K}/{MULTI30K_SPLITS[split]}.{lang}.gz"] = gzip.compress(text.encode("utf-8"), mtime=0)
    manifest = {}
    for rel, data in files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        manifest[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return manifest


# ---------------------------------------------------------------------------------------------
# The data rule: a dataset's files present and checked, whatever their origin. Every translation
# task (multi30k_en_de, multi30k_de_en) reads the one dataset multi30k.

DATASET_SOURCES = {"shakespeare": ("tinyshakespeare",),
                   "multi30k": tuple(name for name in SOURCES if name.startswith("multi30k."))}


def prepare(task: str, root, *, base=DEFAULT_BASE, download: bool = True, fixtures: bool = False,
            retries: int = 3, wait: float = 5.0) -> dict:
    """The files of dataset `task` (shakespeare, multi30k) under root, each matching its recorded
    sha256 -> a manifest {task, root, source, files: {rel_path: {sha256, bytes, source}}} (the
    train jobs check the files against it).

    A file already there is used when its sum is the recorded one (staged), else it is an error:
    it is never replaced. A missing one is fetched from `base` (download) or, with `fixtures`,
    written as a fixture (write_fixtures; smoke preset and tests): a fixture's sum is its own,
    and only fixture mode accepts it. Missing files without either: one error naming them all.
    """
    if task not in DATASET_SOURCES:
        raise ValueError(f"unknown text dataset {task!r}; known: {', '.join(DATASET_SOURCES)}")
    root = Path(root)
    fixture_sums = {}
    if fixtures:
        with tempfile.TemporaryDirectory() as tmp:
            fixture_sums = {rel: meta["sha256"] for rel, meta in write_fixtures(tmp).items()}
            for name in DATASET_SOURCES[task]:
                rel = SOURCES[name][0]
                dest = root / rel
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    part = dest.with_name(f".{dest.name}.part")
                    part.write_bytes((Path(tmp) / rel).read_bytes())
                    os.replace(part, dest)
    files, missing = {}, []
    for name in DATASET_SOURCES[task]:
        rel, recorded = SOURCES[name]
        dest = root / rel
        if dest.exists():
            actual = sha256(dest)
            if actual not in (recorded, fixture_sums.get(rel)):
                raise ChecksumError(f"{dest} is truncated or altered (it is not the recorded {rel}): "
                                    f"sha256 {actual}, expected {recorded}. It was not used. Delete "
                                    "it to fetch it again.")
            origin = "fixture" if actual == fixture_sums.get(rel) else "checked"
        elif download:
            fetch(rel, base, root, retries=retries, wait=wait)
            actual, origin = recorded, "fetched"
        else:
            missing.append(dest)
            continue
        files[rel] = {"sha256": actual, "bytes": dest.stat().st_size, "source": origin}
    if missing:
        raise FileNotFoundError(
            f"{task}: {len(missing)} data file(s) missing and downloads are off (data.download: "
            f"false):\n" + "\n".join(f"  {p}" for p in missing) + f"\nStage them under {root} at "
            f"these paths (a copy of {base}), or set data.download: true where there is network.")
    source = "fixture" if any(f["source"] == "fixture" for f in files.values()) else "checked"
    return {"task": task, "root": str(root.resolve()), "source": source, "files": files}
