"""Text data for the NLP experiments: Tiny Shakespeare (character-level language model) and
Multi30k task 1 (German <-> English sentence pairs, read in either direction).

Files live under a data folder `root` at the same relative paths as their public raw-file URLs
(`<owner>/<repo>/<branch>/<path>`), so a mirror of the URLs, a download and a staged copy all look
alike. Each file is pinned by a sha256 recorded here: a file that does not match is never used.
Nothing here touches the network except `fetch` (kvt.data.acquire.fetch), which the pipeline's
data rule calls.
Every training batch is a pure function of (seed, step), so a resumed run sees the same batches.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..seeds import STEP_STRIDE, derived
from . import acquire
from .acquire import ChecksumError, manifest, sha256, write_atomic
from .facts import FACTS, TRAIN_FRACTION, CharFacts, PairFacts, char_split

# ---------------------------------------------------------------------------------------------
# Sources: name -> (path relative to the raw-file root, sha256). The sums are those of the files
# the study used (the offline mirror's SHA256SUMS), recorded here so a changed upstream file or a
# damaged copy is caught rather than silently trained on.

DEFAULT_BASE = "https://raw.githubusercontent.com"
SHAKESPEARE = "karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
MULTI30K = "multi30k/dataset/master/data/task1/raw"
MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}

SOURCES: dict[str, tuple[str, str]] = {
    "tinyshakespeare": (
        SHAKESPEARE,
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "multi30k.train.de": (
        f"{MULTI30K}/train.de.gz",
        "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    ),
    "multi30k.train.en": (
        f"{MULTI30K}/train.en.gz",
        "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    ),
    "multi30k.val.de": (
        f"{MULTI30K}/val.de.gz",
        "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    ),
    "multi30k.val.en": (
        f"{MULTI30K}/val.en.gz",
        "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    ),
    "multi30k.test.de": (
        f"{MULTI30K}/test_2016_flickr.de.gz",
        "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    ),
    "multi30k.test.en": (
        f"{MULTI30K}/test_2016_flickr.en.gz",
        "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    ),
}


def _expected(rel_path: str) -> str:
    """The recorded sha256 of rel_path (looked up at call time, so tests can add fixtures)."""
    for rel, digest in SOURCES.values():
        if rel == rel_path:
            return digest
    known = "\n".join(f"  {rel}" for rel, _ in SOURCES.values())
    raise KeyError(f"{rel_path!r} is not a known source; known:\n{known}")


def fetch(
    rel_path: str, base=DEFAULT_BASE, dest_root=".", *, retries: int = 3, wait: float = 5.0
) -> Path:
    """dest_root/rel_path, present and matching its recorded sha256, copied from `base` (a URL:
    http://, https://, file://; or a local folder laid out like the URLs) if missing. An existing
    file is verified, never replaced; see acquire.fetch."""
    expected = _expected(rel_path)
    return acquire.fetch(
        acquire.source_path(base, rel_path),
        Path(dest_root) / rel_path,
        expected,
        retries=retries,
        wait=wait,
        hint=f"`base` {base} must be a URL or a folder laid "
        f"out like the raw-file URLs (<owner>/<repo>/<branch>/<path>); without network, "
        f"point it at a local copy holding {rel_path}.",
    )


def _missing(path: Path, rel_path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path} does not exist. Run the data rule (kvt.data.text.fetch({rel_path!r}, "
        f"base, root)) or copy it there from a machine that has it, same relative path."
    )


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


def char_splits(
    text: str, train_fraction: float = TRAIN_FRACTION
) -> tuple[CharVocab, torch.Tensor, torch.Tensor]:
    """(vocab, train ids, val ids): the first train_fraction of the text trains, the rest validates
    (contiguous, as the reference split it: no shuffling, so val is unseen text)."""
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    n = char_split(len(ids), train_fraction)
    return vocab, ids[:n], ids[n:]


def _blocks(
    ids: torch.Tensor, offsets: torch.Tensor, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
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
        gen = torch.Generator().manual_seed(derived(self.seed, STEP_STRIDE, step))
        offsets = torch.randint(len(self.ids) - self.block, (self.batch_size,), generator=gen)
        return _blocks(self.ids, offsets, self.block)

    def batches(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless batches of global steps start_step, start_step + 1, ..."""
        step = start_step
        while True:
            yield self.batch(step)
            step += 1


def fixed_batches(
    ids: torch.Tensor, block: int, batch_size: int, n_batches: int, seed: int = 0
) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
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
        raise ValueError(
            f"Multi30k {split}: {p_src} has {len(s)} lines but {p_tgt} has {len(t)}; "
            f"the sides must be line-aligned (a truncated or mismatched file?)"
        )
    return list(zip(s, t))


# ---------------------------------------------------------------------------------------------
# The data rule: a dataset's files present and checked, whatever their origin. Every translation
# task (multi30k_en_de, multi30k_de_en) reads the one dataset multi30k.

DATASET_SOURCES = {
    "shakespeare": ("tinyshakespeare",),
    "multi30k": tuple(name for name in SOURCES if name.startswith("multi30k.")),
}


def prepare(
    task: str,
    root,
    *,
    base=DEFAULT_BASE,
    download: bool = True,
    fixtures: bool = False,
    retries: int = 3,
    wait: float = 5.0,
) -> dict:
    """The files of dataset `task` (shakespeare, multi30k) under root, each matching its recorded
    sha256 -> a manifest {task, root, source, files: {rel_path: {sha256, bytes, source}}} (the
    train jobs check the files against it).

    A file already there is used when its sum is the recorded one (staged), else it is an error:
    it is never replaced. A missing one is fetched from `base` (download) or, with `fixtures`,
    written as a fixture (kvt.data.text_fixtures; smoke preset and tests): a fixture's sum is its own,
    and only fixture mode accepts it. Missing files without either: one error naming them all.
    """
    if task not in DATASET_SOURCES:
        raise ValueError(f"unknown text dataset {task!r}; known: {', '.join(DATASET_SOURCES)}")
    root = Path(root)
    fixture_sums = _write_missing_fixtures(task, root) if fixtures else {}
    files, missing = {}, []
    for name in DATASET_SOURCES[task]:
        rel, recorded = SOURCES[name]
        dest = root / rel
        if dest.exists():
            actual = sha256(dest)
            if actual not in (recorded, fixture_sums.get(rel)):
                raise ChecksumError(
                    f"{dest} is truncated or altered (it is not the recorded {rel}): "
                    f"sha256 {actual}, expected {recorded}. It was not used. Delete "
                    "it to fetch it again."
                )
            origin = "fixture" if actual == fixture_sums.get(rel) else "checked"
        elif download:
            fetch(rel, base, root, retries=retries, wait=wait)
            actual, origin = recorded, "fetched"
        else:
            missing.append(dest)
            continue
        files[rel] = {"sha256": actual, "bytes": dest.stat().st_size, "source": origin}
    if missing:
        raise acquire.DataMissingError(
            f"{task}: {len(missing)} data file(s) missing and downloads are off (data.download: "
            f"false):\n" + "\n".join(f"  {p}" for p in missing) + f"\nStage them under {root} at "
            f"these paths (a copy of {base}; from a local copy: {acquire.stage_command(task, root)}), "
            f"or set data.download: true where there is network."
        )
    source = "fixture" if any(f["source"] == "fixture" for f in files.values()) else "checked"
    return manifest(root.resolve(), source, files, task=task)


def measure(task: str, root) -> CharFacts | PairFacts:
    """The facts of the files of dataset `task` under root (the data rule's, checked): the text's
    characters and vocabulary, or the sentence pairs of each split. For files the declared facts
    cannot describe (fixtures): the data rule checks the settings against these. A corpus's
    largest vocabulary is left unknown (training SentencePiece finds it: the tokenizer rule)."""
    if task == "shakespeare":
        play = read_shakespeare(root)
        return CharFacts(FACTS[task].title, len(play), CharVocab(play).chars)
    if task == "multi30k":
        from .tokenizer import SPECIALS

        pairs = {split: read_pairs(root, split) for split in MULTI30K_SPLITS}
        chars = {c for pair in pairs["train"] for side in pair for c in side}
        sizes = {split: len(p) for split, p in pairs.items()}
        return PairFacts(FACTS[task].title, **sizes, min_vocab=len(chars) + len(SPECIALS))
    raise ValueError(f"unknown text dataset {task!r}; known: {', '.join(DATASET_SOURCES)}")


def _write_missing_fixtures(task: str, root: Path) -> dict[str, str]:
    """Write the fixture files of `task` that are missing under root; returns {rel: sha256} of
    every fixture file (the sums fixture mode accepts)."""
    from .text_fixtures import write_text_fixtures

    with tempfile.TemporaryDirectory() as tmp:
        sums = {rel: meta["sha256"] for rel, meta in write_text_fixtures(tmp).items()}
        for name in DATASET_SOURCES[task]:
            rel = SOURCES[name][0]
            if not (root / rel).exists():
                write_atomic(root / rel, (Path(tmp) / rel).read_bytes())
    return sums


def stage_from(task: str, root, folder) -> dict:
    """`python -m kvt.data.acquire stage`: the data rule with `folder` (a copy laid out like the
    raw-file URLs, as data.text_base accepts) as the source, no fixtures -> the manifest."""
    return prepare(task, root, base=Path(folder), download=True, fixtures=False, retries=1)


def file_states(task: str, root) -> dict[str, str]:
    """{rel: verified | fixture | missing | corrupt} of the files of `task` under root (`python -m
    kvt.data.acquire status`); fixture: a file the smoke preset's data rule wrote."""
    from .text_fixtures import write_text_fixtures

    root, states, fixture_sums = Path(root), {}, None
    for name in DATASET_SOURCES[task]:
        rel, recorded = SOURCES[name]
        if not (root / rel).is_file():
            states[rel] = "missing"
            continue
        sha = sha256(root / rel)
        if sha != recorded and fixture_sums is None:
            with tempfile.TemporaryDirectory() as tmp:
                fixture_sums = {r: m["sha256"] for r, m in write_text_fixtures(tmp).items()}
        states[rel] = (
            "verified"
            if sha == recorded
            else "fixture"
            if fixture_sums.get(rel) == sha
            else "corrupt"
        )
    return states
