"""What each dataset holds, declared once: items per split, classes, images per class, characters,
sentence pairs. The configuration is checked against these before any job (kvt.limits, with each
family's `limits`); a data rule measures the files it produced and checks the same limits against
what it measured (fixture or staged files may hold fewer). Torch-free: the DAG is built from it.

Where the numbers come from (tests/test_dataset_limits.py checks them on the files it can reach):
- MNIST, CIFAR-10, CIFAR-100: torchvision's documented sizes (60,000 / 10,000; 50,000 / 10,000);
  CIFAR's classes are balanced by construction (its publisher: 5,000 / 1,000 and 500 / 100 images
  a class); MNIST's per-class counts are the publisher's (their sums are the split sizes).
- Fashion-MNIST: the IDX headers and labels of the publisher's archives (Debian's copy in
  /usr/share/datasets/fashion-mnist): 6,000 / 1,000 images of each of 10 classes.
- digits: scikit-learn's 1,797 images, 360 of them held out as test by kvt.data.vision (a fixed
  seeded permutation; its DIGITS_TEST is read from here); per-class counts measured on that split.
- Tiny Shakespeare: the recorded input.txt (kvt.data.text.SOURCES), split by char_split.
- Multi30k task 1: the recorded train, val and test_2016_flickr files (line counts).
- Human Numbers: generated (kvt.data.human_numbers), fastai's train.txt and valid.txt exactly; its
  token count and vocabulary are those the reference's numbers_pos.ipynb prints (63,095; 30).
"""

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFacts:
    """An image classification dataset: images of each class in its training and test splits."""

    title: str  # as messages name it
    train_per_class: tuple[int, ...]
    test_per_class: tuple[int, ...]

    @property
    def train(self) -> int:
        return sum(self.train_per_class)

    @property
    def test(self) -> int:
        return sum(self.test_per_class)

    @property
    def classes(self) -> int:
        return len(self.train_per_class)

    def __str__(self) -> str:
        return f"{self.train} training and {self.test} test images, {self.classes} classes"


# Tiny Shakespeare: the first TRAIN_FRACTION of the characters trains, the rest validates
# (contiguous, the reference's split; kvt.data.text.char_splits).
TRAIN_FRACTION = 0.9


def char_split(characters: int, train_fraction: float = TRAIN_FRACTION) -> int:
    """Characters of the training part of a text of `characters` (the rest validates)."""
    return int(train_fraction * characters)


def holdout_size(images: int, fraction: float) -> int:
    """Images of one class that a class-balanced hold-out of `fraction` takes (Python's round:
    half to even; kvt.data.set_anomaly.balanced_holdout)."""
    return int(round(fraction * images))


@dataclass(frozen=True)
class CharFacts:
    """A text for a character-level model: its length and its character vocabulary."""

    title: str
    characters: int
    vocabulary: str  # its distinct characters, sorted (kvt.data.text.CharVocab)

    @property
    def train_chars(self) -> int:
        return char_split(self.characters)

    @property
    def val_chars(self) -> int:
        return self.characters - self.train_chars

    def __str__(self) -> str:
        return (
            f"{self.characters} characters ({self.val_chars} validate), "
            f"{len(self.vocabulary)} distinct"
        )


@dataclass(frozen=True)
class PairFacts:
    """A parallel corpus: sentence pairs per split, and the smallest and largest subword
    vocabulary of its training text (None: not known, e.g. the largest of files a data rule
    measured). The smallest: a piece per character (the tokenizer's character_coverage 1.0)
    and the 4 special pieces."""

    title: str
    train: int
    val: int
    test: int
    max_vocab: int | None = None
    min_vocab: int | None = None

    def __str__(self) -> str:
        return f"{self.train} / {self.val} / {self.test} train / val / test sentence pairs"


@dataclass(frozen=True)
class WordFacts:
    """A word-level token stream cut into sequences of seq_len tokens (and their next-token
    targets), the first 80% of the sequences training, the rest validating
    (kvt.data.human_numbers)."""

    title: str
    tokens: int
    vocabulary: tuple[str, ...]  # in order of first appearance (the token ids)

    def split_sizes(self, seq_len: int) -> tuple[int, int]:
        """(training, validation) sequences of seq_len tokens."""
        from .human_numbers import split_sizes

        return split_sizes(self.tokens, seq_len)

    def __str__(self) -> str:
        return f"{self.tokens} tokens, {len(self.vocabulary)} distinct"


def _balanced(classes: int, train: int, test: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(train_per_class, test_per_class) of a dataset with as many images of every class."""
    return classes * (train,), classes * (test,)


FACTS: dict = {
    "mnist": ImageFacts(
        "MNIST",
        (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    ),
    "fashion_mnist": ImageFacts("Fashion-MNIST", *_balanced(10, 6000, 1000)),
    "cifar10": ImageFacts("CIFAR-10", *_balanced(10, 5000, 1000)),
    "cifar100": ImageFacts("CIFAR-100", *_balanced(100, 500, 100)),
    # digits has no test split: kvt.data.vision holds out this test set's 360 images (its size)
    "digits": ImageFacts(
        "scikit-learn digits",
        (140, 151, 126, 152, 147, 143, 148, 146, 134, 150),
        (38, 31, 51, 31, 34, 39, 33, 33, 40, 30),
    ),
    "shakespeare": CharFacts(
        "Tiny Shakespeare",
        1_115_394,
        "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    ),
    # max_vocab: SentencePiece's own bound for the tokenizer rule's input (both languages of the
    # training split, kvt.experiments.translation.tokenizer_job; BPE, kvt.data.tokenizer's
    # options). Measured on the mirror: training with vocab_size=100000 fails with "Vocabulary
    # size too high (100000). Please set it to a value <= 83574."; 83,574 trains, 83,575 fails.
    # min_vocab: 102 distinct characters in both languages of the training split, plus the 4
    # specials; vocab_size=105 fails with "Vocabulary size is smaller than required_chars. 105
    # vs 106".
    "multi30k": PairFacts(
        "Multi30k", train=29_000, val=1_014, test=1_000, max_vocab=83_574, min_vocab=106
    ),
    "human_numbers": WordFacts(
        "Human Numbers",
        63_095,
        (
            *("one . two three four five six seven eight nine ten eleven twelve".split()),
            *("thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()),
            *("twenty thirty forty fifty sixty seventy eighty ninety hundred thousand".split()),
        ),
    ),
}


def facts(dataset: str):
    """The declared facts of `dataset`."""
    if dataset not in FACTS:
        raise ValueError(f"no facts declared for dataset {dataset!r}; known: {', '.join(FACTS)}")
    return FACTS[dataset]


def to_record(item) -> dict:
    """Measured facts as JSON (a data rule's manifest records what its files hold)."""
    return {"kind": type(item).__name__, **dataclasses.asdict(item)}


def from_record(record: dict):
    """The facts of a manifest's record (to_record); ValueError if it is not one."""
    kinds = {cls.__name__: cls for cls in (ImageFacts, CharFacts, PairFacts, WordFacts)}
    fields = dict(record)
    cls = kinds.get(fields.pop("kind", None))
    if cls is None:
        raise ValueError(f"not a record of dataset facts: {record!r}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
