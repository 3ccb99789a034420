"""The translation family's runtime (declaration: kvt.families.translation): the Multi30k
translators (en -> de, de -> en), their data, step and metrics, and the family's own jobs (data,
tokenizer, cross-attention figure).
"""

import math
import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import text
from ..data.tokenizer import BOS, EOS, PAD, SPECIALS, UNK, Tokenizer
from ..data.translation import PairBatches, encode_pairs, eval_batches, pad
from ..families.translation import CORPUS
from ..models.config import fields_from
from ..models.translator import Translator, TranslatorConfig
from .base import Experiment
from .text_data import text_fixture_inputs, verified_data_root

SELECT_ON = ("val_bleu", "max")
SOURCE_LEN, TARGET_LEN = 16, 15  # about Multi30k's mean lengths in BPE pieces (benchmark batches)


def train_settings(hp: dict) -> dict:
    lr = hp["lr"] or hp["d_model"] ** -0.5 * hp["warmup_steps"] ** -0.5  # Noam's peak (factor 1)
    return {"optimizer": "adam", "schedule": "noam", "betas": (0.9, 0.98), "eps": 1e-9, "lr": lr}


# -- data ---------------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _pairs(root: Path, tokenizer: str, source: str, target: str, max_len: int):
    """{split: (source ids, target ids, raw target sentences: the BLEU references)}, and the
    tokenizer."""
    tok = Tokenizer.load(tokenizer)
    out = {}
    for split in text.MULTI30K_SPLITS:
        pairs = text.read_pairs(root, split, source, target)
        src, tgt = encode_pairs(pairs, tok, max_len)
        out[split] = (src, tgt, [t for _, t in pairs])
    return out, tok


def pairs(hp: dict, inputs: dict):
    if "tokenizer" not in inputs:
        raise ValueError("a translation run needs the tokenizer rule's model as input 'tokenizer'")
    root = verified_data_root(inputs, "a translation run")
    return _pairs(root, str(inputs["tokenizer"]), hp["source"], hp["target"], hp["max_len"])


def train_data(hp: dict, inputs: dict):
    src, tgt, _ = pairs(hp, inputs)[0]["train"]
    return PairBatches(src, tgt, hp["batch_size"], hp["seed"])


def eval_data(hp: dict, split: str, inputs: dict):
    src, tgt, _ = pairs(hp, inputs)[0][split]
    return eval_batches(src, tgt, hp["eval_batch"])


# -- model and step -------------------------------------------------------------------------
def build_model(hp: dict) -> Translator:
    model = Translator(fields_from(TranslatorConfig, hp))
    # read by `step` in training mode only
    model.label_smoothing, model.loss_form = hp["label_smoothing"], hp["loss"]
    return model


def _xlogx(p: float) -> float:
    return p * math.log(p) if p > 0 else 0.0


def reference_loss(logits, target, smoothing: float, pad_id: int = PAD):
    """The reference's training loss (translation_transformer_pos.ipynb: the Annotated
    Transformer's LabelSmoothingDistribution, then nn.KLDivLoss(reduction='batchmean') on the
    log-softmax): KL(q || p) summed over the non-<pad> target positions and divided by ALL B x T
    positions (batchmean divides by the rows, <pad> rows included). q puts 1 - smoothing on the
    true class, 0 on <pad>, smoothing / (V - 2) on each other class; a <pad> row is all zero.
    Computed in closed form: sum q log q - q . log p, without a V-wide target per position."""
    logp = F.log_softmax(logits.float().flatten(0, 1), dim=-1)
    target = target.flatten()
    v = logp.shape[-1]
    confidence, rest = 1.0 - smoothing, smoothing / (v - 2)
    true = logp.gather(1, target[:, None]).squeeze(1)
    others = logp.sum(-1) - true - logp[:, pad_id]
    kl = _xlogx(confidence) + (v - 2) * _xlogx(rest) - confidence * true - rest * others
    return kl.masked_fill(target == pad_id, 0.0).sum() / target.numel()


def step(model, batch) -> dict:
    """Mean loss per target token, and the token count: in training the loss of `loss_form` (kl:
    the reference's, `reference_loss`; ce: cross-entropy with label smoothing); in evaluation
    plain cross-entropy per target token."""
    src, tgt_in, tgt_out = batch
    logits = model(src, tgt_in)
    count = (tgt_out != PAD).sum()
    if model.training and model.loss_form == "kl":
        return {"loss": reference_loss(logits, tgt_out, model.label_smoothing), "count": count}
    smoothing = model.label_smoothing if model.training else 0.0
    loss = F.cross_entropy(
        logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD, label_smoothing=smoothing
    )
    return {"loss": loss, "count": count}


# -- translation metrics --------------------------------------------------------------------
def decode_limit(model, src_len: int) -> int:
    """Tokens a translation may have: 2 x the (batch's) source length + 10, at most max_len - 1
    (a length limit in the manner of fairseq's max_len_a/b: an untrained or looping model stops
    early instead of running to max_len)."""
    return min(model.cfg.max_len - 1, 2 * src_len + 10)


def translate_ids(model, src: list, batch: int, device, beam: int = 1) -> list[list[int]]:
    """The generated ids of each source id sequence: <bos> and <pad> left out, <eos> kept where
    the model produced it within the decoding limit."""
    out = []
    for i in range(0, len(src), batch):
        x = pad(src[i : i + batch]).to(device)
        limit = decode_limit(model, x.shape[1])
        ids = model.greedy(x, limit) if beam == 1 else model.beam_search(x, beam, limit)
        out += [[t for t in row if t != PAD] for row in ids.tolist()]
    return out


def translate(model, src: list, tok, batch: int, device, beam: int = 1) -> list[str]:
    """Detokenised translations of source id sequences, specials stripped."""
    return tok.decode(translate_ids(model, src, batch, device, beam))


def bleu(hyps: list[str], refs: list[str]):
    """sacreBLEU corpus BLEU (0-100, default 13a tokenisation, exp smoothing) and its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    return metric.corpus_score(hyps, [refs]).score, str(metric.get_signature())


# The reference's BLEU (translation_transformer_pos.ipynb, calculate_bleu_score): nltk's corpus_bleu
# on word tokens of spaCy's tokenizer (torchtext's get_tokenizer('spacy'): tokenizer only), with
# <bos>/<eos> kept and words outside the training split's vocabulary read as <unk>.
WORD_BOS, WORD_EOS, WORD_UNK = SPECIALS[BOS], SPECIALS[EOS], SPECIALS[UNK]  # the notebook's strings


@lru_cache(maxsize=2)
def _spacy_tokenizer(lang: str):
    """spaCy's rule-based tokenizer of `lang` (spacy.blank: no model download); the notebook's
    de_core_news_sm / en_core_web_sm pipelines tokenise with these same rules."""
    import spacy

    return spacy.blank(lang).tokenizer


def words(sentences: list[str], lang: str) -> list[list[str]]:
    """spaCy's word tokens of each sentence (whitespace runs beyond one space are tokens too)."""
    return [[t.text for t in doc] for doc in _spacy_tokenizer(lang).pipe(sentences)]


@lru_cache(maxsize=4)
def train_vocab(root: Path, lang: str) -> frozenset[str]:
    """The reference's target vocabulary: every word of the `lang` side of the training split
    (build_vocab_from_iterator with min_freq=1; its specials are added by `nltk_bleu`)."""
    return frozenset(w for sent in words(text.read_side(root, "train", lang), lang) for w in sent)


def nltk_bleu(hyps: list[str], refs: list[str], lang: str, vocab, finished=None) -> float:
    """The reference's corpus BLEU (nltk, default weights, no smoothing; 0-1) of detokenised
    hypotheses against one reference each. Both sides: spaCy words of `lang`, a word not in
    `vocab` -> <unk>, <bos> first. A reference ends with <eos>; a hypothesis where `finished`
    says the model produced <eos> (all by default), as the notebook's greedy decoding kept it."""
    from nltk.translate.bleu_score import corpus_bleu

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    finished = [True] * len(hyps) if finished is None else list(finished)

    def tokens(sentence_words, eos):
        return (
            [WORD_BOS] + [w if w in vocab else WORD_UNK for w in sentence_words] + [WORD_EOS] * eos
        )

    references = [[tokens(r, True)] for r in words(refs, lang)]
    hypotheses = [tokens(h, done) for h, done in zip(words(hyps, lang), finished)]
    return float(corpus_bleu(references, hypotheses))


def val_scorer(hp: dict, inputs: dict, device):
    """BLEU of greedy translations of the first val_bleu_size val sentences."""
    data, tok = pairs(hp, inputs)
    src, _, refs = data["val"]
    n = min(hp["val_bleu_size"], len(src))
    return lambda model: {
        "bleu": bleu(translate(model, src[:n], tok, hp["eval_batch"], device), refs[:n])[0]
    }


def test_extras(model, hp: dict, inputs: dict, device, out_dir: Path) -> dict:
    """translations.txt (one line per test sentence), their sacreBLEU with its signature, and the
    reference's nltk BLEU of the same translations. Writes only in out_dir."""
    data, tok = pairs(hp, inputs)
    src, _, refs = data["test"]
    ids = translate_ids(model, src, hp["eval_batch"], device, beam=hp["beam"])
    hyps = tok.decode(ids)
    score, signature = bleu(hyps, refs)
    vocab = train_vocab(verified_data_root(inputs, "a translation run"), hp["target"])
    reference_score = nltk_bleu(hyps, refs, hp["target"], vocab, [EOS in row for row in ids])
    (out_dir / "translations.txt").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    print(f"sacreBLEU {score:.2f} ({signature}); nltk BLEU {reference_score:.4f}", file=sys.stderr)
    return {"bleu": score, "bleu_signature": signature, "bleu_nltk": reference_score}


# -- the family's own jobs (Snakemake scripts call these) -------------------------------------
def tokenizer_job(job) -> None:
    """The tokenizer rule: one joint subword model of both languages, from the training split only
    (it serves both translation directions)."""
    from ..data.tokenizer import train_tokenizer

    root = verified_data_root(dict(job.input), "the tokenizer rule")
    train = text.read_pairs(root, "train", "de", "en")
    sentences = [s for s, _ in train] + [t for _, t in train]
    try:
        tok = train_tokenizer(sentences, job.params.vocab_size, Path(job.output.model))
    except ValueError as err:
        if "too large" not in str(err) and "too small" not in str(err):
            raise
        names = ", ".join(f"translation.{t}.vocab_size" for t in job.config["translation"]["tasks"])
        raise ValueError(f"{names}: {err}") from None
    print(
        f"tokenizer: {tok.vocab_size} pieces from {len(sentences)} training sentences",
        file=sys.stderr,
    )


def cross_attention_panels(models: dict, inputs: dict, device, index: int = 0) -> dict:
    """{variant: (source pieces, translation pieces, maps heads x T x S of the last decoder layer)}
    for test sentence `index`, each variant translating it greedily with its selected weights."""
    panels = {}
    for variant, (model, hp) in models.items():
        data, tok = pairs(hp, inputs)
        src = data["test"][0][index][None].to(device)
        out = model.greedy(src, decode_limit(model, src.shape[1]))
        out = out[:, : int((out[0] != PAD).sum())]  # this sentence's tokens, through its EOS
        tgt_in = torch.cat([torch.full((1, 1), model.cfg.bos_id, device=device), out], 1)[:, :-1]
        maps = model.cross_attention(src, tgt_in)[-1][0]
        panels[variant] = (
            [tok.piece(i) for i in src[0].tolist()],
            [tok.piece(i) for i in out[0].tolist()],
            maps.cpu(),
        )
    return panels


def cross_attention_job(job) -> None:
    """The decoder's cross-attention on one test sentence, one panel per variant."""
    from .. import runner
    from ..jobs import inputs, setup
    from ..report.attention import cross_attention_figure
    from ..report.figures import save

    device = setup(job)
    models = {}
    # each model.pt must be its run's (params.hparams: first_models' runs; a copied file is refused)
    for path, hp in zip(job.input.models, job.params.hparams, strict=True):
        model, ckpt = runner.load_model(Path(path), device, expect=dict(hp))
        models[ckpt["hparams"]["attention"]] = (model, ckpt["hparams"])
    with torch.no_grad():
        panels = cross_attention_panels(models, inputs(job), device)
    save(cross_attention_figure(panels, job.wildcards.task), job.output.png, job.output.pdf)


class Translation(Experiment):
    """The Multi30k translators (kvt.experiments.base)."""

    build_model = staticmethod(build_model)
    train_data = staticmethod(train_data)
    eval_data = staticmethod(eval_data)
    step = staticmethod(step)
    val_scorer = staticmethod(val_scorer)
    test_extras = staticmethod(test_extras)
    train_settings = staticmethod(train_settings)

    def fixture_inputs(self, hp: dict, root: Path) -> dict:
        """The fixture pairs, their manifest and a tokenizer learned from the fixture training
        pairs (as the tokenizer rule does) of the run's vocab_size."""
        from ..data.tokenizer import train_tokenizer

        inputs = text_fixture_inputs(CORPUS, root)
        train = text.read_pairs(Path(root) / "data", "train")
        model = Path(root) / "tokenizer.model"
        if not model.exists():
            train_tokenizer([s for s, _ in train] + [t for _, t in train], hp["vocab_size"], model)
        return {**inputs, "tokenizer": str(model)}

    def random_batch(self, hp: dict, generator):
        b, v = hp["batch_size"], hp["vocab_size"]
        src = torch.randint(4, v, (b, SOURCE_LEN), generator=generator)
        tgt = torch.randint(4, v, (b, TARGET_LEN + 1), generator=generator)
        tgt[:, 0] = BOS
        return src, tgt[:, :-1], tgt[:, 1:]

    def select_on(self, hp: dict) -> tuple[str, str]:
        return SELECT_ON


EXPERIMENT = Translation()
