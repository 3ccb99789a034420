"""kvt.data.tokenizer: lossless round trip (umlauts, punctuation, odd spacing), special ids stripped
in decode, byte-identical models from the same sentences, clear errors. Trains on a few hundred
synthetic sentences (write_text_fixtures) plus Multi30k-like ones; the real train split when the offline
mirror is present."""

from pathlib import Path

import pytest
import torch
from kvt.data import text as T
from kvt.data.text_fixtures import write_text_fixtures
from kvt.data.tokenizer import BOS, EOS, PAD, UNK, Tokenizer, train_tokenizer

MIRROR = next(
    (
        r
        for r in (
            Path(__file__).resolve().parents[2] / "shared/data/mirror",
            Path("/work/shared/data/mirror"),
        )
        if (r / "SHA256SUMS").is_file()
    ),
    None,
)
needs_mirror = pytest.mark.skipif(
    MIRROR is None, reason="offline mirror shared/data/mirror not found"
)

REAL_ISH = [
    "Zwei junge, weiße Männer sind im Freien in der Nähe vieler Büsche.",
    "Two young, White males are outside near many bushes.",
    "Ein Mann in grün hält eine Gitarre, während der andere Mann sein Hemd ansieht.",
    "A man in green holds a guitar while the other man observes his shirt.",
    "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
    "A little girl climbing into a wooden playhouse.",
    'Eine Frau, die an einem großen Fenster steht und "Grüße!" ruft; 3 Hunde (braun) schauen zu.',
    "Ein Junge springt  über den Bach - oder etwa nicht?",  # double space: kept, not squeezed
    " Leading and trailing spaces ",
    "",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("fixtures")
    write_text_fixtures(root)
    return [s for pair in T.read_pairs(root, "train") for s in pair] + REAL_ISH * 3


@pytest.fixture(scope="module")
def tok(corpus, tmp_path_factory) -> Tokenizer:
    return train_tokenizer(corpus, 200, tmp_path_factory.mktemp("tok") / "spm.model")


def test_specials_and_round_trip(tok):
    assert tok.vocab_size == len(tok) == 200
    assert [tok.piece(i) for i in (PAD, UNK, BOS, EOS)] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    ids = tok.encode(REAL_ISH)
    assert all(
        isinstance(i, int) and i > EOS for seq in ids for i in seq
    )  # no specials from encode
    assert tok.decode(ids) == REAL_ISH
    unseen = ["Drei Mädchen spielen am Strand, während ein Mann schläft.", "Two dogs (brown) run!"]
    assert tok.decode(tok.encode(unseen)) == unseen
    assert (
        "".join(tok.pieces("Ein Hund läuft.")).replace("\u2581", " ").strip() == "Ein Hund läuft."
    )


def test_decode_strips_specials(tok):
    a, b = tok.encode(["Ein Hund läuft im Park.", "A dog runs."])
    rows = [[BOS] + a + [EOS, PAD, PAD], [BOS] + b + [EOS] + a + [PAD]]  # text after EOS is cut
    assert tok.decode(rows) == ["Ein Hund läuft im Park.", "A dog runs."]
    width = max(map(len, rows))
    batch = torch.tensor([r + [PAD] * (width - len(r)) for r in rows])
    assert tok.decode(batch) == ["Ein Hund läuft im Park.", "A dog runs."]
    assert tok.decode([a, [BOS, EOS], [], [PAD, BOS] + b]) == [
        "Ein Hund läuft im Park.",
        "",
        "",
        "A dog runs.",
    ]
    assert tok.decode(torch.zeros(0, 5, dtype=torch.long)) == []


def test_training_is_deterministic(corpus, tmp_path):
    paths = [tmp_path / f"{i}/spm.model" for i in range(2)]
    for p in paths:
        train_tokenizer(corpus, 150, p)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in paths[0].parent.iterdir()) == [
        "spm.model"
    ]  # no temporary file left
    train_tokenizer(corpus, 150, tmp_path / "u.model", model_type="unigram")
    train_tokenizer(corpus, 150, tmp_path / "u2.model", model_type="unigram")
    assert (tmp_path / "u.model").read_bytes() == (tmp_path / "u2.model").read_bytes()


@pytest.mark.slow
@needs_mirror
def test_real_train_split(tmp_path):
    """8,000 pieces from the 29,000 train pairs: deterministic, and val/test round trip losslessly."""
    sents = [s for pair in T.read_pairs(MIRROR, "train") for s in pair]
    a = train_tokenizer(sents, 8000, tmp_path / "a.model")
    train_tokenizer(sents, 8000, tmp_path / "b.model")
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
    for split in ("val", "test"):
        held_out = [s for pair in T.read_pairs(MIRROR, split) for s in pair]
        assert a.decode(a.encode(held_out)) == held_out


def test_load_errors(tok, tmp_path):
    assert Tokenizer.load(tok.path).encode(["Ein Hund."]) == tok.encode(["Ein Hund."])
    missing = tmp_path / "nope.model"
    with pytest.raises(FileNotFoundError, match="tokenizer rule") as err:
        Tokenizer.load(missing)
    assert str(missing) in str(err.value)
    for data in (b"not a model", b"", tok.path.read_bytes()[:100]):
        bad = tmp_path / "bad.model"
        bad.write_bytes(data)
        with pytest.raises(ValueError) as err:
            Tokenizer.load(bad)
        assert str(bad) in str(err.value)


def test_vocab_too_large(corpus, tmp_path):
    with pytest.raises(ValueError, match="vocab_size=100000 is too large"):
        train_tokenizer(corpus, 100_000, tmp_path / "big.model")
    assert not (tmp_path / "big.model").exists()
