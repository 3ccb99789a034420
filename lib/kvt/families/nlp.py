"""NLP (docs/protocol.md): character-level Tiny Shakespeare with a decoder-only GPT, and Multi30k
translation with an encoder-decoder in both directions, English -> German (the reference's runs)
and German -> English. The family's declaration; training code: kvt.experiments.nlp.

Each task has its own settings (the models, optimisers and metrics differ): the char-LM trains
for a number of iterations and is scored by its loss on the validation text (Tiny Shakespeare has
no test split; the paper reports validation loss after the last iteration), a translator trains
for epochs, is selected on validation BLEU and scored on test_2016_flickr by sacreBLEU and by the
reference's nltk BLEU. A translation task is named multi30k_<source>_<target>: its languages come
from the name, and both directions share the Multi30k files and one joint tokenizer.
"""

from dataclasses import dataclass

from ..report import paper
from .base import (ConfigError, Family, TableRecipe, axis, check_heads, fused_setting,
                   init_setting, mem_mb_setting, pos_dim_setting, runtime_setting, scale_setting,
                   setting, Workload)

CHARLM = "shakespeare"
TRANSLATION = ("multi30k_en_de", "multi30k_de_en")  # en -> de first: the reference's direction
TASKS = (CHARLM, *TRANSLATION)
CORPUS = "multi30k"  # the dataset (data rule) and tokenizer every translation task shares
DATASETS = (CHARLM, CORPUS)


def languages(task: str) -> tuple[str, str]:
    """(source, target) of a translation task, from its name multi30k_<source>_<target>."""
    if task not in TRANSLATION:
        raise ValueError(f"{task!r} is not a translation task; known: {', '.join(TRANSLATION)}")
    source, target = task.removeprefix(f"{CORPUS}_").split("_")
    return source, target


@dataclass
class NLPGrid:
    d_model: list[int] = axis([192], "Model widths.")
    depth: list[int] = axis([6], "Numbers of blocks (of each stack, for the translator).")
    heads: list[int] = axis([3], "Numbers of heads (each must divide every d_model).")


@dataclass
class CharLMTask:
    grid: NLPGrid = setting(NLPGrid(), "Hyperparameter grid.", run=False)
    block: int = setting(64, "Context length in characters.", minimum=2)
    iterations: int = setting(10_000, "Training iterations (optimizer steps).", minimum=1)
    batch_size: int = setting(64, "Blocks per training batch.", minimum=1)
    lr: float = setting(5e-4, "AdamW learning rate (constant).", exclusiveMinimum=0)
    weight_decay: float = setting(0.01, "AdamW weight decay (PyTorch's default, as the reference).",
                                  minimum=0)
    dropout: float = setting(0.2, "Dropout of the attention weights, the attention output and the "
                             "feed-forward output (the reference notebook's sites).", minimum=0,
                             maximum=1)
    val_every: int = setting(200, "Validate every this many iterations (and at the last).", minimum=1)
    eval_batches: int = setting(200, "Batches of the fixed validation set (the same text for every "
                                "variant and seed).", minimum=1)
    sample_chars: int = setting(500, "Characters generated per run by the eval job (sample.txt).",
                                minimum=0)
    select: str = setting("last", "Weights scored: last (the paper's number after the last "
                          "iteration; the validation text is also the score's text) or best "
                          "(lowest validation loss).", enum=["best", "last"])
    scale: str = scale_setting("model")
    pos_dim: int = pos_dim_setting(20)
    pos_per_head: bool = setting(True, "One map_pos per head (the char-LM reference) instead of "
                                 "one per layer.")
    fused: bool = fused_setting()
    init: str = init_setting("torch")
    runtime: int = runtime_setting(240)
    mem_mb: int = mem_mb_setting(8000)


@dataclass
class TranslationTask:
    grid: NLPGrid = setting(NLPGrid(d_model=[64, 128, 256], depth=[2], heads=[1, 4]),
                            "Hyperparameter grid.", run=False)
    vocab_size: int = setting(8000, "Subword vocabulary of the joint SentencePiece model, learned "
                              "from both languages of the training split (tokenizer rule; one "
                              "model serves both directions, so they must agree).", minimum=8)
    max_len: int = setting(100, "Tokens per sentence, specials included (longer ones are cut; "
                           "also the decoding limit and kv_pos's table size).", minimum=4)
    epochs: int = setting(20, "Training epochs.", minimum=1)
    batch_size: int = setting(50, "Sentence pairs per training batch.", minimum=1)
    eval_batch: int = setting(100, "Sentence pairs per validation/test batch.", minimum=1)
    lr: float | None = setting(None, "Peak learning rate, reached at the end of the warm-up; null: "
                               "Noam's d_model^-0.5 * warmup_steps^-0.5.", exclusiveMinimum=0)
    warmup_steps: int = setting(4000, "Warm-up steps of the Noam schedule.", minimum=1)
    label_smoothing: float = setting(0.1, "Label smoothing of the training loss (validation loss "
                                     "is plain cross-entropy).", minimum=0, maximum=1)
    loss: str = setting("kl", "Training loss: kl, the reference's (the Annotated Transformer's "
                        "LabelSmoothing with KLDivLoss 'batchmean': the target smoothed over "
                        "V - 2 classes, <pad> and the true class excluded, <pad> rows ignored, "
                        "summed and divided by all B x T target positions); ce, cross_entropy's "
                        "label smoothing (over all V classes, mean over non-<pad> tokens).",
                        enum=["kl", "ce"])
    dropout: float = setting(0.1, "Dropout (embeddings, attention weights, blocks, feed-forward "
                             "hidden layer).", minimum=0, maximum=1)
    val_bleu_size: int = setting(500, "Validation sentences decoded for BLEU after every epoch "
                                 "(the first ones: a fixed subset).", minimum=1)
    beam: int = setting(1, "Beam size of the test translations (1: greedy, the protocol).",
                        minimum=1)
    cross: str = setting("qk", "Cross-attention of the kv variants (docs/attention.md): qk, a query "
                         "projection for cross-attention only (the reference); kk, W_K on both "
                         "sides.", enum=["qk", "kk"])
    select: str = setting("best", "Weights tested: best validation BLEU, or last.",
                          enum=["best", "last"])
    scale: str = scale_setting("head")
    pos_dim: int = pos_dim_setting(10)
    pos_per_head: bool = setting(False, "One map_pos per head instead of one per layer.")
    fused: bool = fused_setting()
    runtime: int = runtime_setting(240)
    mem_mb: int = mem_mb_setting(8000)


@dataclass
class NLPConfig:
    tasks: list[str] = setting(list(TASKS), "Tasks to run.", run=False, minItems=1,
                               uniqueItems=True)
    shakespeare: CharLMTask = setting(CharLMTask(), "Character-level Tiny Shakespeare (docs/protocol.md).")
    multi30k_en_de: TranslationTask = setting(TranslationTask(), "Multi30k task-1 translation, "
                                              "English -> German (the reference's direction).")
    multi30k_de_en: TranslationTask = setting(TranslationTask(), "Multi30k task-1 translation, "
                                              "German -> English.")


def translation_tasks(section: dict) -> list[str]:
    return [t for t in section["tasks"] if t in TRANSLATION]


def tokenizer_vocab(section: dict) -> int:
    """vocab_size of the one joint tokenizer: the translation tasks' (check: they agree)."""
    tasks = translation_tasks(section) or list(TRANSLATION)
    return section[tasks[0]]["vocab_size"]


def check(section: dict) -> None:
    for task in section["tasks"]:
        check_heads(f"nlp.{task}.grid", section[task]["grid"])
    sizes = {t: section[t]["vocab_size"] for t in translation_tasks(section)}
    if len(set(sizes.values())) > 1:
        raise ConfigError("nlp: the translation tasks share one joint tokenizer, but their "
                          "vocab_size differ (" + ", ".join(f"{t}.vocab_size={v}" for t, v in
                                                       sizes.items()) + "); set them equal")


def workload(hp: dict, section: dict) -> Workload:
    """Char-LM: iterations x batch x block characters. Translation: Multi30k's 29,000 training
    pairs of about 16 + 15 BPE pieces through an encoder and a decoder of `depth` blocks each."""
    if hp["task"] == CHARLM:
        return Workload(tokens=hp["iterations"] * hp["batch_size"] * hp["block"], seq=hp["block"],
                        mlp=4, blocks=hp["depth"])
    return Workload(tokens=hp["epochs"] * 29000 * 31, seq=16, mlp=4, blocks=2 * hp["depth"])


@dataclass(frozen=True)
class NLPFamily(Family):
    def settings(self, section: dict, task: str) -> dict:
        """A translation task's settings also name its languages (from the task's name)."""
        out = super().settings(section, task)
        if task in TRANSLATION:
            out["source"], out["target"] = languages(task)
        return out


BLEU_METRICS = (("test_bleu", "test BLEU (sacreBLEU, 0-100)"),
                ("test_bleu_nltk", "test BLEU (nltk on spaCy words, 0-1: the reference's)"))

FAMILY = NLPFamily(
    name="nlp",
    config=NLPConfig,
    tasks=TASKS,
    grid_tags={"d_model": "d", "depth": "l", "heads": "h"},
    runtime="kvt.experiments.nlp",
    code=("families/nlp.py", "experiments/nlp.py", "models/gpt.py", "models/translator.py",
          "data/text.py", "data/tokenizer.py", "data/translation.py"),
    table=TableRecipe(
        metric="test_bleu", label="test BLEU (sacreBLEU)",
        task_metrics={
            "shakespeare": (("test_loss", "validation loss (nats/char)"),
                            ("test_bpc", "validation bits per character")),
            **{task: BLEU_METRICS for task in TRANSLATION}},
        reference=paper.nlp_cell, reference_note=(
            "Reference (gpt_dev_pos.ipynb): char-LM validation loss at step 9999, the mean of its "
            "two runs per variant (d 192, 6 layers, 3 heads, 10,000 iterations). Its translation "
            "runs (nltk BLEU, en -> de, per configuration) and every run it prints: "
            "tables/reproduction.md, judged there where the settings are the reference's."),
        bounded=False, score_figure="score", mean_row=False,
        lower_better=("test_loss", "test_bpc"),
        cfg_label="configuration (d: width, l: depth, h: heads)", model_keys=("task",),
        task_extras={task: (f"figures/nlp/bleu_{task}.png", f"figures/nlp/cross_attention_{task}.png")
                     for task in TRANSLATION}),
    doc="NLP (docs/protocol.md): char-level GPT on Tiny Shakespeare (AdamW, constant lr, iterations) "
        "and an encoder-decoder on Multi30k, en -> de and de -> en (Adam, Noam, the reference's "
        "label-smoothed loss, selected on val BLEU).",
    check=check,
    per_task=True,
    order=3,
    workload=workload,
)
