"""Subword tokenizer of the translation experiments: one joint SentencePiece model (BPE by default)
for both languages, learned from the training split only, offline.

Why SentencePiece: detokenisation is lossless (decode gives the plain sentence back, which sacreBLEU
scores), it needs no language-specific pre-tokeniser, and training with one thread on the full,
unshuffled input is deterministic (byte-identical model files).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import sentencepiece as spm
import torch

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")  # pieces of ids 0..3
RULE = (
    "the tokenizer rule (kvt.data.tokenizer.train_tokenizer on the source and target sentences "
    "of the Multi30k train split)"
)


def train_tokenizer(
    sentences: list[str], vocab_size: int, path, model_type: str = "bpe"
) -> "Tokenizer":
    """Learn a model of vocab_size pieces (specials included) from `sentences` and write it to `path`
    atomically (temporary file in the same folder, then os.replace); returns the loaded Tokenizer."""
    path = Path(path)
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buf,
            vocab_size=vocab_size,
            model_type=model_type,
            num_threads=1,  # multi-threaded training may order merges differently
            input_sentence_size=0,
            shuffle_input_sentence=False,  # use every sentence, no random sampling
            character_coverage=1.0,  # every character of the train split gets a piece (umlauts, ß)
            # identity + kept whitespace: decode(encode(s)) == s. The default NFKC rule and
            # whitespace squeezing change 130 of the 58,000 Multi30k train sentences (double spaces).
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            pad_piece=SPECIALS[PAD],
            unk_piece=SPECIALS[UNK],
            bos_piece=SPECIALS[BOS],
            eos_piece=SPECIALS[EOS],
            minloglevel=2,
        )  # quiet: warnings and errors only
    except RuntimeError as e:
        what = f"vocab_size={vocab_size}, model_type={model_type!r}, {len(sentences)} sentences"
        if "Vocabulary size too high" in str(e):
            raise ValueError(
                f"vocab_size={vocab_size} is too large for this corpus ({what}): {e}"
            ) from None
        if "smaller than required_chars" in str(e):  # a piece per character, and the specials
            raise ValueError(
                f"vocab_size={vocab_size} is too small for this corpus ({what}): {e}"
            ) from None
        raise ValueError(f"tokenizer training failed ({what}): {e}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)  # atomic: never a partial model at `path`
    finally:
        Path(tmp).unlink(missing_ok=True)
    return Tokenizer.load(path)


class Tokenizer:
    """A trained SentencePiece model with the fixed special ids PAD, UNK, BOS, EOS."""

    def __init__(self, sp: spm.SentencePieceProcessor, path=None):
        self.sp, self.path = sp, path

    @classmethod
    def load(cls, path) -> "Tokenizer":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model {path} does not exist; it is made by {RULE}.")
        try:
            sp = spm.SentencePieceProcessor(model_proto=path.read_bytes())
            ok = sp.vocab_size() > len(SPECIALS) and all(
                sp.id_to_piece(i) == p for i, p in enumerate(SPECIALS)
            )
        except (RuntimeError, OSError) as e:
            raise ValueError(
                f"{path} is not a readable SentencePiece model ({e}); delete it and rerun {RULE}."
            ) from None
        if not ok:  # e.g. an empty file parses as an empty model
            raise ValueError(
                f"{path} is not a tokenizer model of this project (specials {SPECIALS} at ids 0-3 "
                f"expected); delete it and rerun {RULE}."
            )
        return cls(sp, path)

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, sentences: list[str]) -> list[list[int]]:
        """Piece ids of each sentence, without BOS/EOS."""
        return self.sp.encode(list(sentences), out_type=int)

    def decode(self, ids_batch) -> list[str]:
        """Sentences of id sequences (lists or a 2-D tensor, e.g. model output): a leading BOS is
        dropped, each sequence ends at its first EOS, PAD and BOS are removed."""
        if isinstance(ids_batch, torch.Tensor):
            ids_batch = ids_batch.tolist()
        out = []
        for ids in ids_batch:
            ids = list(ids)
            if ids and ids[0] == BOS:
                ids = ids[1:]
            if EOS in ids:
                ids = ids[: ids.index(EOS)]
            out.append([i for i in ids if i not in (PAD, BOS)])
        return self.sp.decode(out) if out else []

    def piece(self, id: int) -> str:
        return self.sp.id_to_piece(int(id))

    def pieces(self, sentence: str) -> list[str]:
        """The subword pieces of a sentence (figure labels)."""
        return self.sp.encode(sentence, out_type=str)
