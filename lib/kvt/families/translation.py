"""Multi30k translation with an encoder-decoder in both directions, English -> German (the
reference's runs) and German -> English (docs/protocol.md): the family's declaration; training
code: kvt.experiments.translation.

A translator trains for epochs, is selected on validation BLEU and scored on test_2016_flickr by
sacreBLEU and by the reference's nltk BLEU. A task is named multi30k_<source>_<target>: its
languages come from the name, and both directions share the Multi30k files and one joint
tokenizer. In the report it is one half of the paper's NLP group (with the char-LM).
"""

from dataclasses import dataclass

from ..data.facts import FACTS
from .base import (
    AttentionSettings,
    ConfigError,
    Family,
    Limit,
    TableRecipe,
    TinyCase,
    Workload,
    axis,
    check_heads,
    eval_runtime_setting,
    group_setting,
    init_setting,
    joint_seeds_setting,
    mem_mb_setting,
    probability_setting,
    runtime_setting,
    setting,
)

TASKS = ("multi30k_en_de", "multi30k_de_en")  # en -> de first: the reference's direction
CORPUS = "multi30k"  # the dataset (data rule) and tokenizer every task shares
TOKENIZER = f"translation/tokenizer/{CORPUS}.model"  # the tokenizer rule's model, under results


def languages(task: str) -> tuple[str, str]:
    """(source, target) of a translation task, from its name multi30k_<source>_<target>."""
    if task not in TASKS:
        raise ValueError(f"{task!r} is not a translation task; known: {', '.join(TASKS)}")
    source, target = task.removeprefix(f"{CORPUS}_").split("_")
    return source, target


@dataclass
class TranslationGrid:
    d_model: list[int] = axis([64, 128, 256], "Model widths.")
    depth: list[int] = axis([2], "Numbers of blocks of each stack.")
    heads: list[int] = axis([1, 4], "Numbers of heads (each must divide every d_model).")


@dataclass
class TranslationTask(AttentionSettings):
    grid: TranslationGrid = setting(TranslationGrid(), "Hyperparameter grid.", run=False)
    vocab_size: int = setting(
        8000,
        "Subword vocabulary of the joint SentencePiece model, learned "
        "from both languages of the training split (tokenizer rule; one "
        "model serves both directions, so they must agree).",
        minimum=8,
    )
    max_len: int = setting(
        100,
        "Tokens per sentence, specials included (longer ones are cut; "
        "also the decoding limit and kv_pos's table size).",
        minimum=4,
    )
    epochs: int = setting(20, "Training epochs.", minimum=1)
    batch_size: int = setting(50, "Sentence pairs per training batch.", minimum=1)
    eval_batch: int = setting(100, "Sentence pairs per validation/test batch.", minimum=1)
    lr: float | None = setting(
        None,
        "Peak learning rate, reached at the end of the warm-up; null: "
        "Noam's d_model^-0.5 * warmup_steps^-0.5.",
        exclusiveMinimum=0,
    )
    warmup_steps: int = setting(4000, "Warm-up steps of the Noam schedule.", minimum=1)
    label_smoothing: float = probability_setting(
        0.1,
        "Label smoothing of the training loss (validation loss is plain cross-entropy).",
    )
    loss: str = setting(
        "kl",
        "Training loss: kl, the reference's (the Annotated Transformer's "
        "LabelSmoothing with KLDivLoss 'batchmean': the target smoothed over "
        "V - 2 classes, <pad> and the true class excluded, <pad> rows ignored, "
        "summed and divided by all B x T target positions); ce, cross_entropy's "
        "label smoothing (over all V classes, mean over non-<pad> tokens).",
        enum=["kl", "ce"],
    )
    dropout: float = probability_setting(
        0.1,
        "Dropout (embeddings, attention weights, blocks, feed-forward hidden layer).",
    )
    val_bleu_size: int = setting(
        500,
        "Validation sentences decoded for BLEU after every epoch (the first ones: a fixed subset).",
        minimum=1,
    )
    beam: int = setting(
        1, "Beam size of the test translations (1: greedy, the protocol).", minimum=1
    )
    cross: str = setting(
        "qk",
        "Cross-attention of the kv variants (docs/attention.md): qk, a query "
        "projection for cross-attention only (the reference); kk, W_K on both "
        "sides.",
        enum=["qk", "kk"],
    )
    select: str = setting(
        "best", "Weights tested: best validation BLEU, or last.", enum=["best", "last"]
    )
    init: str = init_setting("xavier")  # what the translator has always used
    runtime: int = runtime_setting(240)
    mem_mb: int = mem_mb_setting(8000)


@dataclass
class TranslationConfig:
    tasks: list[str] = setting(
        list(TASKS), "Tasks to run.", run=False, minItems=1, uniqueItems=True
    )
    multi30k_en_de: TranslationTask = setting(
        TranslationTask(),
        "Multi30k task-1 translation, English -> German (the reference's direction).",
    )
    multi30k_de_en: TranslationTask = setting(
        TranslationTask(), "Multi30k task-1 translation, German -> English."
    )
    eval_runtime: int = eval_runtime_setting(30)
    group: bool = group_setting()
    joint_seeds: bool = joint_seeds_setting()


def tokenizer_vocab(section: dict) -> int:
    """vocab_size of the one joint tokenizer: the tasks' (check: they agree)."""
    return section[section["tasks"][0]]["vocab_size"]


def check(section: dict) -> None:
    for task in section["tasks"]:
        check_heads(f"translation.{task}.grid", section[task]["grid"])
    sizes = {t: section[t]["vocab_size"] for t in section["tasks"]}
    if len(set(sizes.values())) > 1:
        raise ConfigError(
            "translation: the tasks share one joint tokenizer, but their "
            "vocab_size differ ("
            + ", ".join(f"{t}.vocab_size={v}" for t, v in sizes.items())
            + "); set them equal"
        )


def limits(section: dict, facts: dict) -> list[Limit]:
    """Per task: a vocabulary its training text can fill, validation BLEU on at most every
    validation pair, a batch of at most the training pairs."""
    corpus = facts[CORPUS]
    out = []
    for task in section["tasks"]:
        s, where = section[task], f"translation.{task}"
        if corpus.max_vocab is not None:
            out.append(
                Limit(
                    f"{where}.vocab_size",
                    s["vocab_size"],
                    CORPUS,
                    corpus.max_vocab,
                    f"SentencePiece's largest vocabulary of the {2 * corpus.train} training "
                    f"sentences of {corpus.title} (both languages)",
                )
            )
        if corpus.min_vocab is not None:
            out.append(
                Limit(
                    f"{where}.vocab_size",
                    s["vocab_size"],
                    CORPUS,
                    corpus.min_vocab,
                    f"SentencePiece needs a piece for each character of the training sentences "
                    f"of {corpus.title} and the 4 special pieces",
                    at_least=True,
                )
            )
        out += [
            Limit(
                f"{where}.val_bleu_size",
                s["val_bleu_size"],
                CORPUS,
                corpus.val,
                f"{corpus.title} has {corpus.val} validation sentence pairs",
            ),
            Limit(
                f"{where}.batch_size",
                s["batch_size"],
                CORPUS,
                corpus.train,
                f"{corpus.title} has {corpus.train} training sentence pairs; the last partial "
                "batch is dropped, so a larger batch makes no step",
            ),
        ]
    return out


def workload(hp: dict, section: dict) -> Workload:
    """Multi30k's training pairs (kvt.data.facts) of about 16 + 15 BPE pieces through an encoder
    and a decoder of `depth` blocks each."""
    pairs = FACTS[CORPUS].train
    return Workload(tokens=hp["epochs"] * pairs * 31, seq=16, mlp=4, blocks=2 * hp["depth"])


@dataclass(frozen=True)
class TranslationFamily(Family):
    def settings(self, section: dict, task: str) -> dict:
        """A task's settings also name its languages (from the task's name)."""
        out = super().settings(section, task)
        out["source"], out["target"] = languages(task)
        return out


BLEU_METRICS = (
    ("test_bleu", "test BLEU (sacreBLEU, 0-100)"),
    ("test_bleu_nltk", "test BLEU (nltk on spaCy words, 0-1: the reference's)"),
)

FAMILY = TranslationFamily(
    name="translation",
    config=TranslationConfig,
    tasks=TASKS,
    grid_tags={"d_model": "d", "depth": "l", "heads": "h"},
    module="kvt.experiments.translation",
    table=TableRecipe(
        metric="test_bleu",
        label="test BLEU (sacreBLEU)",
        task_metrics={task: BLEU_METRICS for task in TASKS},
        reference_note=(
            "Its translation runs (nltk BLEU, en -> de, per configuration) and every run it "
            "prints: tables/reproduction.md, judged there where the settings are the reference's."
        ),
        bounded=False,
        score_figure="score",
        mean_row=False,
        cfg_label="configuration (d: width, l: depth, h: heads)",
        model_keys=("task",),
        task_extras={
            task: (f"figures/nlp/bleu_{task}.png", f"figures/nlp/cross_attention_{task}.png")
            for task in TASKS
        },
        group="nlp",
    ),
    doc="Multi30k translation, en -> de and de -> en (docs/protocol.md): an encoder-decoder, Adam "
    "with Noam's schedule, the reference's label-smoothed loss, selected on val BLEU.",
    check=check,
    limits=limits,
    per_task=True,
    order=4,
    inputs={"data": f"data/{CORPUS}.json", "tokenizer": TOKENIZER},
    eval_outputs={"translations": "translations.txt"},
    # fixture pairs: 400 train pairs, batch 50 -> 8 steps, 2 epochs
    tiny=TinyCase(
        {
            "multi30k_en_de": {
                "grid": {"d_model": [16], "depth": [1], "heads": [2]},
                "vocab_size": 120,
                "max_len": 40,
                "epochs": 2,
                "warmup_steps": 5,
                "val_bleu_size": 20,
                "eval_batch": 30,
            }
        },
        "multi30k_en_de",
    ),
    bench_cases=(("multi30k_en_de", None),),
    layer_shapes=({"batch": 50, "heads": 4, "n": 30, "d_head": 16, "pos_dim": 10, "context": 32},),
    workload=workload,
)
