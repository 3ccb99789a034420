"""fastai's Human Numbers (URLs.HUMAN_NUMBERS), generated rather than downloaded, and the token
stream and sequences the reference's numbers_pos.ipynb cuts from it. Torch-free.

The archive holds train.txt and valid.txt: one number a line in English words, lower case, no
hyphen and no "and" ("twenty one", "nine thousand nine hundred ninety nine"), each line ending in
a space and a newline ("one \\n", as the notebook's `lines` print). train.txt counts 1 to 7,999
and valid.txt 8,001 to 9,999: 8,000 is in neither file. The notebook's printed counts are the
evidence: 9,998 lines (not 9,999) and 63,095 tokens, which only a missing two-word number gives,
and valid.txt's first line is "eight thousand one" (fastbook's chapter 12 prints it).

The notebook joins the stripped lines of both files with " . ", splits on spaces (the tokens),
numbers the distinct tokens in order of first appearance (the vocabulary: 30 words), cuts
non-overlapping sequences of seq_len tokens with their next-token targets, and keeps the first
80% of the sequences for training and the rest for validation (in stream order: validation is the
numbers from about 7,800 on).
"""

from pathlib import Path

ONES = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()

# The numbers of each file; 8,000 is in neither (module docstring).
SPLITS = {"train": range(1, 8000), "valid": range(8001, 10000)}
FILES = {"train": "train.txt", "valid": "valid.txt"}
SEPARATOR = "."  # the notebook's token between two numbers
TRAIN_FRACTION = 0.8  # of the sequences, in stream order (the notebook's cut)


def words(n: int) -> str:
    """1 <= n <= 9,999 in fastai's spelling: "four thousand three hundred twenty one"."""
    if not 1 <= n <= 9999:
        raise ValueError(f"Human Numbers spells 1 to 9,999, not {n}")
    out = []
    if n >= 1000:
        out += [ONES[n // 1000 - 1], "thousand"]
        n %= 1000
    if n >= 100:
        out += [ONES[n // 100 - 1], "hundred"]
        n %= 100
    if n >= 20:
        out.append(TENS[n // 10 - 2])
        n %= 10
    if n:
        out.append(ONES[n - 1])
    return " ".join(out)


def file_text(split: str) -> str:
    """The text of train.txt or valid.txt (split: train or valid), as fastai's archive has it."""
    if split not in SPLITS:
        raise ValueError(f"Human Numbers has the splits {', '.join(SPLITS)}, not {split!r}")
    return "".join(f"{words(n)} \n" for n in SPLITS[split])


def write_files(root) -> list[Path]:
    """train.txt and valid.txt under root (to compare with fastai's archive, or to read them)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, name in FILES.items():
        path = root / name
        path.write_text(file_text(split), encoding="utf-8")
        paths.append(path)
    return paths


def tokens() -> list[str]:
    """The notebook's token stream: both files' stripped lines joined with " . ", split on spaces."""
    lines = [line.strip() for split in SPLITS for line in file_text(split).splitlines()]
    return f" {SEPARATOR} ".join(lines).split(" ")


def vocabulary(stream: list[str]) -> tuple[str, ...]:
    """The distinct tokens in order of first appearance (fastai's L.unique)."""
    return tuple(dict.fromkeys(stream))


def token_ids() -> tuple[tuple[str, ...], list[int]]:
    """(vocabulary, the stream as vocabulary indices)."""
    stream = tokens()
    vocab = vocabulary(stream)
    index = {w: i for i, w in enumerate(vocab)}
    return vocab, [index[t] for t in stream]


def sequence_starts(n_tokens: int, seq_len: int) -> range:
    """Where the notebook's sequences start: range(0, len(nums) - sl - 1, sl)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    return range(0, n_tokens - seq_len - 1, seq_len)


def split_sizes(n_tokens: int, seq_len: int) -> tuple[int, int]:
    """(training sequences, validation sequences) of a stream of n_tokens."""
    n = len(sequence_starts(n_tokens, seq_len))
    cut = int(n * TRAIN_FRACTION)
    return cut, n - cut


def sequences(ids: list[int], seq_len: int) -> dict[str, tuple[list[list[int]], list[list[int]]]]:
    """{"train": (inputs, targets), "valid": (...)}: each input seq_len tokens, its target the
    same tokens one step on."""
    starts = list(sequence_starts(len(ids), seq_len))
    x = [ids[i : i + seq_len] for i in starts]
    y = [ids[i + 1 : i + seq_len + 1] for i in starts]
    cut = split_sizes(len(ids), seq_len)[0]
    return {"train": (x[:cut], y[:cut]), "valid": (x[cut:], y[cut:])}
