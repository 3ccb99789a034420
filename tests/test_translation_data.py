"""kvt.data.translation (encoding with truncation, padding, resumable seeded batches, fixed
evaluation batches), the Multi30k/Shakespeare fixtures of kvt.data.text, and a sacreBLEU sanity
check of detokenised output."""

from itertools import islice

import pytest
import sacrebleu
import torch
from kvt.data import text as T
from kvt.data.text_fixtures import write_text_fixtures
from kvt.data.tokenizer import BOS, EOS, PAD, train_tokenizer
from kvt.data.translation import PairBatches, encode_pairs, eval_batches, pad


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, write_text_fixtures(root)


@pytest.fixture(scope="module")
def tok(fixtures, tmp_path_factory):
    root, _ = fixtures
    sents = [s for pair in T.read_pairs(root, "train") for s in pair]
    return train_tokenizer(sents, 120, tmp_path_factory.mktemp("tok") / "spm.model")


def _seqs(n=23, seed=0):
    """n pairs of random lengths, values tagging the pair index (src i+10, tgt body i+10)."""
    gen = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, 9, (n, 2), generator=gen).tolist()
    src = [torch.tensor([i + 10] * a + [EOS]) for i, (a, _) in enumerate(lens)]
    tgt = [torch.tensor([BOS] + [i + 10] * b + [EOS]) for i, (_, b) in enumerate(lens)]
    return src, tgt


# ---------------------------------------------------------------- fixtures (kvt.data.text)


def test_fixtures_read_back(fixtures, tmp_path):
    root, manifest = fixtures
    assert set(manifest) == {rel for rel, _ in T.SOURCES.values()}
    for rel, entry in manifest.items():
        assert (
            T.sha256(root / rel) == entry["sha256"]
            and (root / rel).stat().st_size == entry["bytes"]
        )
    sizes = {split: len(T.read_pairs(root, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 400, "val": 60, "test": 60}
    splits = {split: set(T.read_pairs(root, split)) for split in sizes}
    assert len(splits["train"] | splits["val"] | splits["test"]) == 520  # distinct, no leakage
    assert T.read_pairs(root, "val", src="en", tgt="de")[0][::-1] == T.read_pairs(root, "val")[0]
    text = T.read_shakespeare(root)
    vocab, train, val = T.char_splits(text)
    assert len(text) > 5000 and text.endswith(".\n") and ":\n" in text
    x, y = next(T.BlockBatches(train, 64, 8, 0).batches())
    assert x.shape == (8, 64) and next(T.fixed_batches(val, 64, 4, 2)())[0].shape == (4, 64)
    assert write_text_fixtures(tmp_path) == manifest  # same bytes each time


def test_fixtures_never_overwrite(fixtures, tmp_path):
    root, manifest = fixtures
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_text_fixtures(root)
    one = (
        tmp_path / T.SOURCES["multi30k.val.en"][0]
    )  # a single real-looking file is enough to refuse
    one.parent.mkdir(parents=True)
    one.write_bytes(b"real data")
    with pytest.raises(FileExistsError, match="val.en.gz"):
        write_text_fixtures(tmp_path)
    assert (
        one.read_bytes() == b"real data"
        and len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1
    )


# ---------------------------------------------------------------- encoding and padding


def test_encode_pairs_and_truncation(fixtures, tok):
    root, _ = fixtures
    pairs = T.read_pairs(root, "val")[:5] + [("", "")]
    src, tgt = encode_pairs(pairs, tok, max_len=100)
    for (s, t), a, b in zip(pairs, src, tgt):
        assert a.dtype == b.dtype == torch.long
        assert a.tolist() == tok.encode([s])[0] + [EOS] and b.tolist() == [BOS] + tok.encode([t])[
            0
        ] + [EOS]
    assert src[-1].tolist() == [EOS] and tgt[-1].tolist() == [BOS, EOS]
    assert tok.decode([tgt[0].tolist()]) == [pairs[0][1]]
    short_src, short_tgt = encode_pairs(pairs, tok, max_len=4)
    for full, cut in zip(src + tgt, short_src + short_tgt):
        assert (
            len(cut) == min(len(full), 4)
            and cut[-1] == EOS
            and torch.equal(cut[:-1], full[: len(cut) - 1])
        )
    with pytest.raises(ValueError, match="max_len"):
        encode_pairs(pairs, tok, max_len=1)


def test_pad():
    out = pad([torch.tensor([5, 6, 3]), torch.tensor([7]), torch.tensor([8, 3])])
    assert out.dtype == torch.long and out.tolist() == [[5, 6, 3], [7, PAD, PAD], [8, 3, PAD]]
    assert pad([torch.tensor([1])], pad_id=9).tolist() == [[1]]


# ---------------------------------------------------------------- batches


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_pair_batches_contents():
    src, tgt = _seqs()
    data = PairBatches(src, tgt, batch_size=5, seed=0)
    assert data.steps_per_epoch == 4  # 23 // 5, the last 3 pairs of each epoch dropped
    seen = []
    for s, t_in, t_out in islice(data.batches(0), 4):
        assert s.shape[0] == t_in.shape[0] == t_out.shape[0] == 5 and t_in.shape == t_out.shape
        for row_s, row_in, row_out in zip(s, t_in, t_out):
            i = row_s[0].item() - 10
            seen.append(i)
            n_src, n_tgt = len(src[i]), len(tgt[i])
            assert torch.equal(row_s[:n_src], src[i]) and (row_s[n_src:] == PAD).all()
            full = torch.cat(
                [tgt[i], torch.full((t_in.shape[1] + 1 - n_tgt,), PAD)]
            )  # padded target
            assert torch.equal(row_in, full[:-1]) and torch.equal(row_out, full[1:])
            assert (
                row_out[n_tgt - 2] == EOS and (row_out[n_tgt - 1 :] == PAD).all()
            )  # loss ignores PAD
        assert s.shape[1] == max(
            len(src[r[0].item() - 10]) for r in s
        )  # padded to the batch's longest
        assert t_in.shape[1] == max(len(tgt[r[0].item() - 10]) for r in s) - 1
    assert len(set(seen)) == 20  # an epoch: no pair twice


def test_pair_batches_resume_and_seeds():
    src, tgt = _seqs()
    full = list(islice(PairBatches(src, tgt, 5, seed=3).batches(0), 11))  # crosses two epoch ends
    again = PairBatches(src, tgt, 5, seed=3)  # a fresh instance, as after a restart
    for k in (0, 3, 4, 9):
        assert _equal(next(again.batches(k)), full[k])
    assert all(_equal(a, b) for a, b in zip(list(islice(again.batches(6), 5)), full[6:]))
    assert not _equal(full[0], full[4])  # epochs are reshuffled
    assert not _equal(next(PairBatches(src, tgt, 5, seed=4).batches(0)), full[0])
    with pytest.raises(ValueError, match="23 training pairs make no batch of 50"):
        PairBatches(src, tgt, 50, 0)
    with pytest.raises(ValueError, match="23 sources but 22 targets"):
        PairBatches(src, tgt[:-1], 5, 0)


def test_eval_batches_fixed():
    src, tgt = _seqs()
    batches = eval_batches(src, tgt, batch_size=10)
    first, second = list(batches()), list(batches())
    assert [b[0].shape[0] for b in first] == [
        10,
        10,
        3,
    ]  # last partial batch kept: every pair scored
    assert all(_equal(a, b) for a, b in zip(first, second))
    assert [r[0].item() - 10 for b in first for r in b[0]] == list(range(23))  # data order


# ---------------------------------------------------------------- BLEU of detokenised text


def test_sacrebleu_on_decoded(fixtures, tok):
    root, _ = fixtures
    refs = [t for _, t in T.read_pairs(root, "test")[:8]] + [
        "Drei kleine Katzen schlafen im Schnee."
    ]
    _, tgt = encode_pairs([("", r) for r in refs], tok, max_len=64)
    hyps = tok.decode(pad(tgt))  # as a model's padded output would be decoded
    assert hyps == refs
    assert (
        round(sacrebleu.corpus_bleu(hyps, [refs]).score, 9) == 100
    )  # 100.00000000000004 (float sums)
    assert sacrebleu.corpus_bleu(hyps[::-1], [refs]).score < 100
