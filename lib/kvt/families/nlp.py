"""NLP (protocol.md): character-level Tiny Shakespeare with a decoder-only GPT, and Multi30k
German -> English translation with an encoder-decoder. The family's declaration; training code:
kvt.experiments.nlp.

Each task has its own settings (the models, optimisers and metrics differ): the char-LM trains
for a number of iterations and is scored by its loss on the validation text (Tiny Shakespeare has
no test split; the paper reports validation loss after the last iteration), the translator trains
for epochs, is selected on validation BLEU and scored by sacreBLEU on test_2016_flickr.
"""

from dataclasses import dataclass

from ..report import paper
from .base import (ConfigError, Family, TableRecipe, axis, check_heads, fused_setting,
                   init_setting, mem_mb_setting, pos_dim_setting, runtime_setting, scale_setting,
                   setting, Workload)

TASKS = ("shakespeare", "multi30k")
LANGUAGES = ["de", "en"]


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
    dropout: float = setting(0.2, "Dropout (embeddings, attention weights, blocks).", minimum=0,
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
    source: str = setting("de", "Source language (the paper: de -> en).", enum=LANGUAGES)
    target: str = setting("en", "Target language.", enum=LANGUAGES)
    vocab_size: int = setting(8000, "Subword vocabulary of the joint SentencePiece model, learned "
                              "from the training split (tokenizer rule).", minimum=8)
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
    dropout: float = setting(0.1, "Dropout (embeddings, attention weights, blocks).", minimum=0,
                             maximum=1)
    val_bleu_size: int = setting(500, "Validation sentences decoded for BLEU after every epoch "
                                 "(the first ones: a fixed subset).", minimum=1)
    beam: int = setting(1, "Beam size of the test translations (1: greedy, the protocol).",
                        minimum=1)
    cross: str = setting("qk", "Cross-attention of the kv variants (attention.md): qk, a query "
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
    shakespeare: CharLMTask = setting(CharLMTask(), "Character-level Tiny Shakespeare (protocol.md).")
    multi30k: TranslationTask = setting(TranslationTask(), "Multi30k task-1 translation "
                                        "(protocol.md).")


def check(section: dict) -> None:
    for task in section["tasks"]:
        check_heads(f"nlp.{task}.grid", section[task]["grid"])
    mt = section["multi30k"]
    if "multi30k" in section["tasks"] and mt["source"] == mt["target"]:
        raise ConfigError(f"nlp.multi30k: source and target are both {mt['source']!r}")


def workload(hp: dict, section: dict) -> Workload:
    """Char-LM: iterations x batch x block characters. Translation: Multi30k's 29,000 training
    pairs of about 16 + 15 BPE pieces through an encoder and a decoder of `depth` blocks each."""
    if hp["task"] == "shakespeare":
        return Workload(tokens=hp["iterations"] * hp["batch_size"] * hp["block"], seq=hp["block"],
                        mlp=4, blocks=hp["depth"])
    return Workload(tokens=hp["epochs"] * 29000 * 31, seq=16, mlp=4, blocks=2 * hp["depth"])


FAMILY = Family(
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
            "multi30k": (("test_bleu", "test BLEU (sacreBLEU, 0-100)"),)},
        reference=paper.nlp_cell, reference_note=(
            "Paper: one KV+Pos run per task. Char-LM: val loss 1.5187 after 10,000 iterations "
            "(comparable when the preset is the paper's). Translation: about 0.32 and 0.36 (shown "
            "x100) for en -> de, d 64, 1 head, after 17 epochs, nltk BLEU on token lists that kept "
            "<bos>/<eos>: NOT comparable with sacreBLEU on detokenised de -> en output."),
        bounded=False, score_figure="score", mean_row=False,
        lower_better=("test_loss", "test_bpc"),
        cfg_label="configuration (d: width, l: depth, h: heads)", model_keys=("task",),
        task_extras={"multi30k": ("figures/nlp/bleu_multi30k.png",
                                  "figures/nlp/cross_attention_multi30k.png")}),
    doc="NLP (protocol.md): char-level GPT on Tiny Shakespeare (AdamW, constant lr, iterations) "
        "and an encoder-decoder on Multi30k (Adam, Noam, label smoothing, selected on val BLEU).",
    check=check,
    per_task=True,
    order=3,
    workload=workload,
)
