"""Test fixtures of the text datasets: small synthetic stand-ins for Tiny Shakespeare and the
gzipped Multi30k files, in the raw-file URL layout. The smoke preset's data rules write them
(text.prepare(fixtures=True) imports this module then), and so do the tests. Same seed, same
bytes. Their sums are not the official ones: only fixture mode accepts them."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

from .acquire import write_atomic
from .text import MULTI30K, MULTI30K_SPLITS, SHAKESPEARE, SOURCES

_PLAY_NAMES = ["First Citizen", "Second Citizen", "Menenius", "Marcius", "Volumnia", "All"]
_PLAY_WORDS = (
    "the and of to my i you that is in not be me it with your his this but for have he "
    "what so will as our lord good king thy thee shall love come speak now well here "
    "let must we no make more than all say know why tell hear"
).split()
# Parallel German/English pieces, so a model can learn a word-for-word mapping (with agreement).
# nouns: (de singular, de plural, gender, en singular, en plural)
_NOUNS = [
    ("Hund", "Hunde", "m", "dog", "dogs"),
    ("Mann", "Männer", "m", "man", "men"),
    ("Junge", "Jungen", "m", "boy", "boys"),
    ("Frau", "Frauen", "f", "woman", "women"),
    ("Katze", "Katzen", "f", "cat", "cats"),
    ("Kind", "Kinder", "n", "child", "children"),
    ("Mädchen", "Mädchen", "n", "girl", "girls"),
]
_ADJECTIVES = [
    ("groß", "big"),
    ("klein", "small"),
    ("braun", "brown"),
    ("jung", "young"),
    ("alt", "old"),
]
_NUMBERS = [("Zwei", "Two"), ("Drei", "Three")]
_VERBS = [
    ("läuft", "laufen", "runs", "run"),
    ("springt", "springen", "jumps", "jump"),
    ("sitzt", "sitzen", "sits", "sit"),
    ("schläft", "schlafen", "sleeps", "sleep"),
    ("spielt", "spielen", "plays", "play"),
    ("steht", "stehen", "stands", "stand"),
]
_PLACES = [
    ("im Park", "in the park"),
    ("am Strand", "on the beach"),
    ("auf der Straße", "on the street"),
    ("im Schnee", "in the snow"),
    ("im Wasser", "in the water"),
    ("vor dem Haus", "in front of the house"),
]
PAIR_COUNTS = {"train": 400, "val": 60, "test": 60}  # sentence pairs per Multi30k split


def _pick(rng, items):
    return items[
        int(rng.random() * len(items))
    ]  # random() only: its sequence is stable across Pythons


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
        de = (
            [{"m": "Ein", "f": "Eine", "n": "Ein"}[gender]]
            + ([adj[0] + {"m": "er", "f": "e", "n": "es"}[gender]] if adj else [])
            + [de_sg]
        )
        en = ["An" if adj and adj[1][0] in "aeiou" else "A"] + ([adj[1]] if adj else []) + [en_sg]
    verb, place = _pick(rng, _VERBS), _pick(rng, _PLACES)
    de += [verb[1] if plural else verb[0], place[0]]
    en += [verb[3] if plural else verb[2], place[1]]
    return " ".join(de) + ".", " ".join(en) + "."


def write_text_fixtures(root, seed: int = 0) -> dict:
    """Write synthetic Tiny Shakespeare and Multi30k (train/val/test, de/en, gzipped, line-aligned,
    distinct pairs in every split) files under `root` at the sources' relative paths; returns their
    manifest {rel_path: {"sha256", "bytes"}}. Same seed, same bytes (gzip without name or time).
    Refuses a folder that already holds any of those files: real data is never overwritten."""
    root = Path(root)
    targets = [root / rel for rel, _ in SOURCES.values()]
    present = [str(p) for p in targets if p.exists()]
    if present:
        raise FileExistsError(
            f"write_text_fixtures({root}): refusing to overwrite existing data files "
            f"(fixtures go in a folder of their own): {', '.join(present)}"
        )
    rng = random.Random(seed)
    files = {SHAKESPEARE: _fixture_play(rng).encode("utf-8")}
    pairs, seen = [], set()
    while len(pairs) < sum(PAIR_COUNTS.values()):
        pair = _fixture_pair(rng)
        if pair not in seen:  # distinct pairs: val/test sentences are unseen in train
            seen.add(pair)
            pairs.append(pair)
    start = 0
    for split, n in PAIR_COUNTS.items():
        chunk = pairs[start : start + n]
        start += n
        for i, lang in enumerate(("de", "en")):
            text = "".join(pair[i] + "\n" for pair in chunk)
            files[f"{MULTI30K}/{MULTI30K_SPLITS[split]}.{lang}.gz"] = gzip.compress(
                text.encode("utf-8"), mtime=0
            )
    manifest = {}
    for rel, data in files.items():
        write_atomic(root / rel, data)
        manifest[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return manifest
