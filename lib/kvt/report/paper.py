"""The numbers the paper reports for the synthetic tasks, as data, so tables and figures can set
ours beside them without anyone retyping them (source: shared/design/paper-results.md).

Per-token test accuracy: for each task the mean over seeds per configuration, then the mean and
std across configurations (16 configurations for copy, swap, sub; 19 for reverse and sort).
"""

# The paper's row order and column order; every table and figure uses these.
TASKS = ("reverse", "sort", "copy", "swap", "sub")
VARIANTS = ("qkv", "kv_pos", "kv")

# task -> attention -> (mean, std across configurations)
SYNTHETIC = {
    "reverse": {"qkv": (0.6978, 0.38), "kv_pos": (0.7181, 0.35), "kv": (0.7046, 0.37)},
    "sort": {"qkv": (0.9708, 0.033), "kv_pos": (0.9628, 0.038), "kv": (0.9664, 0.035)},
    "copy": {"qkv": (1.0, 0.0), "kv_pos": (1.0, 0.0), "kv": (1.0, 0.0)},
    "swap": {"qkv": (0.588, 0.42), "kv_pos": (0.6711, 0.37), "kv": (0.5974, 0.41)},
    "sub": {"qkv": (1.0, 0.0), "kv_pos": (1.0, 0.0), "kv": (1.0, 0.0)},
}

# The paper's "mean of the 5" row (no std printed).
SYNTHETIC_MEAN = {"qkv": 0.851, "kv_pos": 0.870, "kv": 0.854}

# Configurations behind each of the paper's cells.
SYNTHETIC_N_CONFIGS = {"reverse": 19, "sort": 19, "copy": 16, "swap": 16, "sub": 16}


def synthetic_cell(task: str, attention: str, metric: str = "test_acc") -> tuple[float, float] | None:
    """(mean, std) the paper reports for task and attention, or None if it reports none."""
    return SYNTHETIC.get(task, {}).get(attention) if metric == "test_acc" else None


def synthetic_mean(attention: str, tasks) -> float | None:
    """The paper's mean over `tasks` for `attention`: its printed "mean of the 5" row when tasks are
    its five, else the mean of its cells over those tasks (None if it lacks any of them), so our
    mean row is always set beside the paper's mean over the same tasks."""
    tasks = list(tasks)
    cells = [synthetic_cell(t, attention) for t in tasks]
    if not tasks or any(c is None for c in cells):
        return None
    if sorted(tasks) == sorted(TASKS) and attention in SYNTHETIC_MEAN:
        return SYNTHETIC_MEAN[attention]
    return sum(c[0] for c in cells) / len(cells)


# NLP (protocol.md), one reference run each, KV+Pos only; (mean, std) with std None for one run.
# Char-LM: val cross-entropy after 10,000 iterations (nats per character). Translation: about 0.32
# and 0.36 after 17 epochs, en -> de, d 64, 1 head, nltk BLEU on token lists that kept <bos>/<eos>
# on a 0-1 scale; as 0-100 it is 34 (2) but NOT comparable with sacreBLEU on detokenised text.
NLP = {
    ("shakespeare", "test_loss"): {"kv_pos": (1.5187, None)},
    ("shakespeare", "test_bpc"): {"kv_pos": (1.5187 / 0.6931471805599453, None)},
    ("multi30k", "test_bleu"): {"kv_pos": (34.0, 2.0)},
}


def nlp_cell(task: str, attention: str, metric: str) -> tuple[float, float | None] | None:
    return NLP.get((task, metric), {}).get(attention)


# Reference numbers protocol.md quotes that are not the paper's cells, or not comparable with ours:
# (family, task, metric, attention) -> (mean, std or None, source, comparable).
OTHER_REFERENCES = {
    ("anomaly", "cifar100", "test_acc", "qkv"): (0.94, None, "UvA tutorial 6's QKV (protocol.md), "
                                                 "not the paper", True),
}
NOT_COMPARABLE = {  # (family, task, metric) -> why
    ("nlp", "multi30k", "test_bleu"): "the paper's BLEU: nltk on token lists that kept <bos>/<eos>, "
                                      "en -> de, 0-1 scale (shown x100); ours: sacreBLEU on "
                                      "detokenised de -> en",
}


def order_variants(names) -> list[str]:
    """Variants in the paper's column order; others (registered later) after, sorted."""
    names = set(names)
    return [v for v in VARIANTS if v in names] + sorted(names - set(VARIANTS))


def order_tasks(names) -> list[str]:
    """Tasks in the paper's row order; others after, sorted."""
    names = set(names)
    return [t for t in TASKS if t in names] + sorted(names - set(TASKS))
