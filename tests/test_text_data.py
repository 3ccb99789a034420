"""kvt.data.text: checksum-pinned fetching that never leaves a partial or wrong file in place,
the character-level split and resumable block batches, and Multi30k pairs. No network: fetches
come from local folders, file:// URLs, or a urlopen monkeypatched to fail; the real files come
from the offline mirror (tests that need it skip when it is absent)."""

import gzip
import hashlib
import urllib.error
import urllib.request
from itertools import islice
from pathlib import Path

import pytest
import torch
from kvt.data import text as T


def _mirror() -> Path | None:
    for root in (
        Path(__file__).resolve().parents[2] / "shared/data/mirror",
        Path("/work/shared/data/mirror"),
    ):
        if (root / "SHA256SUMS").is_file():
            return root
    return None


MIRROR = _mirror()
needs_mirror = pytest.mark.skipif(
    MIRROR is None,
    reason="offline mirror shared/data/mirror not found "
    "(beside the repo or at /work/shared/data/mirror)",
)
FIX_REL = "someone/corpus/main/data/fixture.txt"
FIX_BYTES = b"To be, or not to be, that is the question.\n" * 20


@pytest.fixture
def fixture_source(tmp_path, monkeypatch):
    """A source folder holding FIX_REL, registered in SOURCES with its own sum."""
    base = tmp_path / "source"
    (base / FIX_REL).parent.mkdir(parents=True)
    (base / FIX_REL).write_bytes(FIX_BYTES)
    monkeypatch.setitem(T.SOURCES, "fixture", (FIX_REL, hashlib.sha256(FIX_BYTES).hexdigest()))
    return base


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------- fetching


def test_recorded_sums_match_mirror():
    """The module's constants cover exactly the mirror's files with the same sums."""
    if MIRROR is None:
        pytest.skip("offline mirror not found")
    listed = {}
    for line in (MIRROR / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        listed[rel.removeprefix("./")] = digest
    assert {rel: d for rel, d in T.SOURCES.values()} == listed
    assert len(T.SOURCES) == 7


def test_fetch_from_local_folder(fixture_source, tmp_path):
    dest = tmp_path / "data"
    path = T.fetch(FIX_REL, fixture_source, dest, wait=0)
    assert path == dest / FIX_REL and path.read_bytes() == FIX_BYTES
    assert _files(dest) == [path]  # no temporary file left beside it
    assert (
        T.fetch(FIX_REL, tmp_path / "nowhere", dest, wait=0) == path
    )  # present: source not needed


def test_fetch_from_file_url(fixture_source, tmp_path):
    dest = tmp_path / "data"
    path = T.fetch(FIX_REL, fixture_source.as_uri(), dest, wait=0)
    assert path.read_bytes() == FIX_BYTES and _files(dest) == [path]


@needs_mirror
def test_fetch_real_shakespeare_from_mirror(tmp_path):
    path = T.fetch(T.SHAKESPEARE, MIRROR, tmp_path, wait=0)
    assert path == tmp_path / T.SHAKESPEARE
    assert T.sha256(path) == T.SOURCES["tinyshakespeare"][1]


def test_existing_altered_file_is_refused_and_kept(fixture_source, tmp_path):
    dest = tmp_path / "data"
    target = dest / FIX_REL
    target.parent.mkdir(parents=True)
    target.write_bytes(FIX_BYTES[:-10])  # truncated
    with pytest.raises(T.ChecksumError) as err:
        T.fetch(FIX_REL, fixture_source, dest, wait=0)
    msg = str(err.value)
    assert str(target) in msg and "truncated or altered" in msg and "Delete it" in msg
    assert T.SOURCES["fixture"][1] in msg and hashlib.sha256(FIX_BYTES[:-10]).hexdigest() in msg
    assert target.read_bytes() == FIX_BYTES[:-10]  # neither used nor replaced
    assert _files(dest) == [target]


def test_wrong_source_leaves_nothing(fixture_source, tmp_path):
    (fixture_source / FIX_REL).write_bytes(FIX_BYTES[:100])  # a truncated copy at the source
    dest = tmp_path / "data"
    for base in (fixture_source, fixture_source.as_uri()):
        with pytest.raises(T.ChecksumError, match="truncated or altered") as err:
            T.fetch(FIX_REL, base, dest, wait=0)
        assert FIX_REL in str(err.value) and str(dest / FIX_REL) in str(err.value)
        assert _files(dest) == []  # neither the final file nor a temporary one


def test_network_failure(fixture_source, tmp_path, monkeypatch):
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dest = tmp_path / "data"
    with pytest.raises(RuntimeError) as err:
        T.fetch(FIX_REL, "https://example.invalid", dest, retries=3, wait=0)
    msg = str(err.value)
    url = f"https://example.invalid/{FIX_REL}"
    assert calls == [url] * 3
    assert (
        url in msg
        and "name resolution" in msg
        and str(dest / FIX_REL) in msg
        and "local copy" in msg
    )
    assert _files(dest) == []


def test_missing_local_source(tmp_path, fixture_source):
    with pytest.raises(RuntimeError, match="does not exist"):
        T.fetch(FIX_REL, tmp_path / "empty", tmp_path / "data", wait=0)
    assert _files(tmp_path / "data") == []
    with pytest.raises(KeyError, match="not a known source"):
        T.fetch("not/a/source.txt", fixture_source, tmp_path / "data")


# ---------------------------------------------------------------- character-level LM


def test_vocab_round_trip():
    vocab = T.CharVocab("hello, world\n")
    assert vocab.chars == "\n ,dehlorw" and vocab.size == len(vocab) == 10
    ids = vocab.encode("world, hello")
    assert ids.dtype == torch.int64 and vocab.decode(ids) == "world, hello"
    assert ids[0].item() == vocab.chars.index("w")
    assert T.CharVocab(vocab.chars).chars == vocab.chars
    with pytest.raises(KeyError, match="'z'"):
        vocab.encode("fizz")


@needs_mirror
def test_shakespeare_split():
    text = T.read_shakespeare(MIRROR)
    vocab, train, val = T.char_splits(text)
    assert len(text) == 1_115_394 and vocab.size == 65
    assert len(train) == int(0.9 * len(text)) == 1_003_854 and len(train) + len(val) == len(text)
    assert vocab.decode(train[:20]) == text[:20] and vocab.decode(val[-20:]) == text[-20:]


def _ids(n=500, vocab=11):
    return torch.arange(n) % vocab  # each next token is the previous + 1 (mod vocab)


def test_block_batches_shape_and_targets():
    ids = torch.randint(50, (400,), generator=torch.Generator().manual_seed(1))
    data = T.BlockBatches(ids, block=16, batch_size=8, seed=0)
    assert data.steps_per_epoch is None
    for x, y in islice(data.batches(0), 5):
        assert x.shape == y.shape == (8, 16)
        assert torch.equal(x[:, 1:], y[:, :-1])
        for row_x, row_y in zip(x, y):  # each row a contiguous block of ids, y one further
            i = next(i for i in range(len(ids) - 16) if torch.equal(ids[i : i + 16], row_x))
            assert torch.equal(ids[i + 1 : i + 17], row_y)
    x, y = next(T.BlockBatches(_ids(), 16, 8, 0).batches())
    assert torch.equal(y, (x + 1) % 11)


def test_block_batches_resume_and_seeds():
    data = T.BlockBatches(_ids(), block=16, batch_size=8, seed=3)
    full = list(islice(data.batches(0), 10))
    tail = list(islice(data.batches(6), 4))
    for (xa, ya), (xb, yb) in zip(full[6:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(full[0][0], full[1][0])  # steps differ
    other = next(T.BlockBatches(_ids(), 16, 8, seed=4).batches(0))
    assert not torch.equal(full[0][0], other[0])
    with pytest.raises(ValueError, match="no block"):
        T.BlockBatches(_ids(16), 16, 8, 0)


def test_fixed_batches_repeat():
    batches = T.fixed_batches(_ids(), block=16, batch_size=8, n_batches=5, seed=0)
    first, second = list(batches()), list(batches())
    assert len(first) == 5
    for (xa, ya), (xb, yb) in zip(first, second):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ya, (xa + 1) % 11)
    assert not all(
        torch.equal(a[0], b[0]) for a, b in zip(first, T.fixed_batches(_ids(), 16, 8, 5, seed=1)())
    )


# ---------------------------------------------------------------- Multi30k


@needs_mirror
def test_multi30k_pairs():
    sizes = {split: len(T.read_pairs(MIRROR, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 29_000, "val": 1_014, "test": 1_000}
    de, en = T.read_pairs(MIRROR, "val")[0]
    en2, de2 = T.read_pairs(MIRROR, "val", src="en", tgt="de")[0]
    assert (de, en) == (de2, en2) and de != en and "\n" not in de


def _write_gz(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(text)


def test_read_lines_and_mismatch(tmp_path):
    raw = tmp_path / T.MULTI30K
    _write_gz(raw / "val.de.gz", "Ein Hund.\r\nZwei\u2028Katzen.\n")
    assert T.read_lines(raw / "val.de.gz") == ["Ein Hund.", "Zwei\u2028Katzen."]
    _write_gz(raw / "val.en.gz", "A dog.\nTwo cats.\n")
    assert T.read_pairs(tmp_path, "val") == [
        ("Ein Hund.", "A dog."),
        ("Zwei\u2028Katzen.", "Two cats."),
    ]
    _write_gz(raw / "val.en.gz", "A dog.\n")
    with pytest.raises(ValueError, match="2 lines but .*val.en.gz has 1"):
        T.read_pairs(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="train.de.gz"):
        T.read_pairs(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown Multi30k split"):
        T.read_pairs(tmp_path, "dev")
