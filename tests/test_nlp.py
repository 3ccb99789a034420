"""The NLP families' runtimes (char-LM and translation): the data rule's checks (a truncated or altered file stops it and is
never used), the per-task training choices, the reference's label-smoothed loss and nltk BLEU
against literal computations, the eval job's sample and translations, both translation directions,
and the settings that need more than the schema."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import FAMILY_INPUTS, tiny_hparams
from kvt import runner
from kvt.config import ConfigError, load_schema, resolve
from kvt.data import text
from kvt.data.integrity import verified_root
from kvt.experiments import charlm as lm_rt
from kvt.experiments import translation as rt

CPU = torch.device("cpu")
MIRROR = next(
    (
        p
        for p in (
            Path(__file__).resolve().parents[2] / "shared/data/mirror",
            Path("/work/shared/data/mirror"),
        )
        if (p / "SHA256SUMS").is_file()
    ),
    None,
)


def test_prepare_writes_fixtures_only_where_files_are_missing(tmp_path):
    info = text.prepare("multi30k", tmp_path, download=False, fixtures=True)
    assert info["source"] == "fixture" and len(info["files"]) == 6
    for rel, meta in info["files"].items():
        assert text.sha256(tmp_path / rel) == meta["sha256"]
    again = text.prepare("multi30k", tmp_path, download=False, fixtures=True)
    assert again == info  # the same files, accepted as they are


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_a_damaged_file_stops_the_data_rule_and_stays(tmp_path, damage):
    text.prepare("shakespeare", tmp_path, download=False, fixtures=True)
    path = tmp_path / text.SHAKESPEARE
    data = path.read_bytes()
    bad = data[: len(data) // 2] if damage == "truncate" else data.replace(b"e", b"E", 1)
    path.write_bytes(bad)
    for fixtures in (True, False):
        with pytest.raises(text.ChecksumError, match=f"{path}.*truncated or altered"):
            text.prepare("shakespeare", tmp_path, download=False, fixtures=fixtures)
    assert path.read_bytes() == bad  # never replaced: the person decides


def test_fixture_files_are_refused_outside_fixture_mode(tmp_path):
    """A real run (fixtures off) never trains on fixture text: its sum is not the recorded one."""
    text.prepare("shakespeare", tmp_path, download=False, fixtures=True)
    with pytest.raises(text.ChecksumError, match="not the recorded"):
        text.prepare("shakespeare", tmp_path, download=False, fixtures=False)


def test_missing_files_without_downloads_are_named(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        text.prepare("multi30k", tmp_path, download=False, fixtures=False)
    assert str(err.value).count("multi30k/dataset/master/data/task1/raw/") == 6
    assert not any(tmp_path.rglob("*.gz"))


@pytest.mark.skipif(MIRROR is None, reason="offline mirror shared/data/mirror not found")
def test_prepare_from_a_staged_copy_and_a_truncated_source(tmp_path):
    info = text.prepare("shakespeare", tmp_path / "data", base=MIRROR)
    assert info["files"][text.SHAKESPEARE]["sha256"] == text.SOURCES["tinyshakespeare"][1]
    bad_base = tmp_path / "bad"
    (bad_base / text.SHAKESPEARE).parent.mkdir(parents=True)
    (bad_base / text.SHAKESPEARE).write_bytes((MIRROR / text.SHAKESPEARE).read_bytes()[:1000])
    with pytest.raises(text.ChecksumError):
        text.prepare("shakespeare", tmp_path / "fresh", base=bad_base)
    assert not (tmp_path / "fresh" / text.SHAKESPEARE).exists()


def test_a_run_refuses_a_file_altered_after_the_data_rule(tmp_path):
    inputs = FAMILY_INPUTS["charlm"](tmp_path)
    info = json.loads(Path(inputs["data"]).read_text())
    path = Path(info["root"]) / text.SHAKESPEARE
    path.write_text(path.read_text().upper())
    verified_root.cache_clear()
    with pytest.raises(text.ChecksumError, match="changed since the data rule"):
        runner.train(
            tiny_hparams("charlm"), tmp_path / "run", tmp_path / "run/model.pt", CPU, inputs=inputs
        )


def test_tasks_train_and_select_as_the_protocol_says():
    lm, mt = tiny_hparams("charlm"), tiny_hparams("translation")
    assert lm_rt.SELECT_ON == ("val_loss", "min") and rt.SELECT_ON == ("val_bleu", "max")
    c = runner.train_config(lm)
    assert (c.optimizer, c.schedule, c.iterations, c.epochs) == ("adamw", "constant", 12, None)
    c = runner.train_config(mt)
    assert (c.optimizer, c.schedule, c.betas, c.eps) == ("adam", "noam", (0.9, 0.98), 1e-9)
    assert c.lr == pytest.approx(16**-0.5 * 5**-0.5)  # lr null: Noam's d^-0.5 warmup^-0.5
    assert runner.train_config({**mt, "lr": 0.003}).lr == 0.003


def test_consecutive_blocks_score_every_character_once():
    ids = torch.arange(103)
    batches = list(lm_rt._consecutive_blocks(ids, 10, 4)())
    xs = torch.cat([x.flatten() for x, _ in batches])
    ys = torch.cat([y.flatten() for _, y in batches])
    assert torch.equal(xs, ids[:-1]) and torch.equal(ys, ids[1:])


@pytest.mark.slow
def test_charlm_run_scores_the_val_text_and_writes_a_seeded_sample(tmp_path):
    inputs = FAMILY_INPUTS["charlm"](tmp_path)
    hp = tiny_hparams("charlm")
    runner.train(hp, tmp_path / "run", tmp_path / "run/model.pt", CPU, inputs=inputs)
    result = runner.test(tmp_path / "run/model.pt", tmp_path / "out/test.json", CPU, inputs=inputs)
    assert result["test_bpc"] == pytest.approx(result["test_loss"] / math.log(2))
    sample = (tmp_path / "out/sample.txt").read_text()
    assert len(sample) == hp["sample_chars"]
    assert set(sample) <= set(lm_rt.chars(inputs)[0].chars)
    runner.test(tmp_path / "run/model.pt", tmp_path / "again/test.json", CPU, inputs=inputs)
    assert (tmp_path / "again/sample.txt").read_text() == sample


@pytest.mark.slow
def test_translation_run_saves_its_test_translations_and_their_bleu(tmp_path):
    import sacrebleu
    from nltk.translate.bleu_score import corpus_bleu

    inputs = FAMILY_INPUTS["translation"](tmp_path)
    hp = tiny_hparams("translation")
    record = runner.train(hp, tmp_path / "run", tmp_path / "run/model.pt", CPU, inputs=inputs)
    assert "val_bleu" in record["selected"]
    result = runner.test(tmp_path / "run/model.pt", tmp_path / "out/test.json", CPU, inputs=inputs)
    hyps = (tmp_path / "out/translations.txt").read_text().split("\n")[:-1]
    root = json.loads(Path(inputs["data"]).read_text())["root"]
    refs = text.read_side(root, "test", "de")  # en -> de: German references
    assert len(hyps) == len(refs) == 60
    assert result["test_bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert result["test_bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert not any(s in h for h in hyps for s in ("<bos>", "<eos>", "<pad>"))
    # the reference's BLEU of the same translations (every fixture word is in the training vocabulary)
    vocab = rt.train_vocab(Path(root), "de")
    assert all(w in vocab for r in refs for w in rt.words([r], "de")[0])
    ids = rt.translate_ids(
        runner.load_model(tmp_path / "run/model.pt", CPU)[0],
        rt.pairs(hp, inputs)[0]["test"][0],
        hp["eval_batch"],
        CPU,
    )
    hyp_words = [
        ["<bos>"]
        + [w if w in vocab else "<unk>" for w in rt.words([h], "de")[0]]
        + ["<eos>"] * (3 in row)
        for h, row in zip(hyps, ids)
    ]
    literal = corpus_bleu(
        [[["<bos>"] + rt.words([r], "de")[0] + ["<eos>"]] for r in refs], hyp_words
    )
    assert 0 <= result["test_bleu_nltk"] <= 1 and result["test_bleu_nltk"] == pytest.approx(literal)


@pytest.mark.slow
def test_test_extra_scores_the_translations_with_the_reference_bleu(tmp_path, monkeypatch):
    """The eval job's nltk BLEU: German words (en -> de), the training vocabulary, <eos> where the
    model ended a translation. Translations stand in for a model: the test targets themselves,
    every third one replaced by another sentence's and every fourth left unended."""
    from nltk.translate.bleu_score import corpus_bleu

    inputs = FAMILY_INPUTS["translation"](tmp_path)
    hp = tiny_hparams("translation")
    data, tok = rt.pairs(hp, inputs)
    targets = [t[1:].tolist() for t in data["test"][1]]  # ids after <bos>, through <eos>
    ids = [
        targets[(i + 7) % len(targets)] if i % 3 == 0 else targets[i] for i in range(len(targets))
    ]
    ids = [row[:-1] if i % 4 == 0 else row for i, row in enumerate(ids)]
    monkeypatch.setattr(rt, "translate_ids", lambda *args, **kw: ids)
    result = rt.test_extras(None, hp, inputs, CPU, tmp_path)
    refs = data["test"][2]
    hyps = (tmp_path / "translations.txt").read_text().split("\n")[:-1]
    assert hyps == tok.decode(ids) and hyps[1] == refs[1]
    vocab = rt.train_vocab(verified_root(inputs["data"]), "de")
    mark = {w: w if w in vocab else "<unk>" for s in hyps + refs for w in rt.words([s], "de")[0]}
    literal = corpus_bleu(
        [[["<bos>"] + [mark[w] for w in rt.words([r], "de")[0]] + ["<eos>"]] for r in refs],
        [
            ["<bos>"] + [mark[w] for w in rt.words([h], "de")[0]] + ["<eos>"] * (i % 4 != 0)
            for i, h in enumerate(hyps)
        ],
    )
    assert 0.3 < result["bleu_nltk"] < 1 and result["bleu_nltk"] == pytest.approx(literal)
    assert set(result) == {"bleu", "bleu_signature", "bleu_nltk"}


def test_translation_tasks_take_their_languages_from_their_names(tmp_path):
    from kvt.families.translation import TASKS, languages

    assert TASKS == ("multi30k_en_de", "multi30k_de_en")  # the reference's direction first
    from conftest import family_hparams

    assert languages("multi30k_de_en") == ("de", "en")
    with pytest.raises(ValueError, match="not a translation task"):
        languages("shakespeare")
    en_de = tiny_hparams("translation")
    de_en = family_hparams(
        "translation", {"multi30k_de_en": {"vocab_size": 120, "max_len": 40}}, "multi30k_de_en"
    )
    assert (en_de["source"], en_de["target"]) == ("en", "de")
    assert (de_en["source"], de_en["target"]) == ("de", "en")
    inputs = FAMILY_INPUTS["translation"](tmp_path)
    src_en, tgt_de, refs_de = rt.pairs(en_de, inputs)[0]["test"]
    src_de, tgt_en, refs_en = rt.pairs(de_en, inputs)[0]["test"]
    # one direction's targets are the other's sources (the same pairs, the same tokenizer)
    assert all(torch.equal(s[:-1], t[1:-1]) for s, t in zip(src_en, tgt_en))
    assert all(torch.equal(s[:-1], t[1:-1]) for s, t in zip(src_de, tgt_de))
    root = json.loads(Path(inputs["data"]).read_text())["root"]
    assert refs_de == text.read_side(root, "test", "de") and refs_en == text.read_side(
        root, "test", "en"
    )


def test_languages_are_not_settable_and_the_tokenizer_is_shared():
    base = {"preset": "paper", "presets": {"paper": {}}}
    with pytest.raises(ConfigError, match="source"):
        resolve(base, {"translation": {"multi30k_en_de": {"source": "de"}}}, load_schema())
    with pytest.raises(
        ConfigError, match="multi30k_en_de.vocab_size=8000, multi30k_de_en.vocab_size=4000"
    ):
        resolve(base, {"translation": {"multi30k_de_en": {"vocab_size": 4000}}}, load_schema())
    one = resolve(
        base,
        {"translation": {"tasks": ["multi30k_de_en"], "multi30k_de_en": {"vocab_size": 4000}}},
        load_schema(),
    )  # one direction: its own size
    from kvt.families.translation import tokenizer_vocab

    assert tokenizer_vocab(one["translation"]) == 4000


# -- the reference's loss (translation_transformer_pos.ipynb) --------------------------------
class LabelSmoothingDistribution(torch.nn.Module):
    """The notebook's class, verbatim but for the device argument."""

    def __init__(self, smoothing_value, pad_token_id, trg_vocab_size):
        super().__init__()
        self.confidence_value = 1.0 - smoothing_value
        self.smoothing_value = smoothing_value
        self.pad_token_id = pad_token_id
        self.trg_vocab_size = trg_vocab_size

    def forward(self, trg_token_ids_batch):
        batch_size = trg_token_ids_batch.shape[0]
        smooth_target_distributions = torch.zeros((batch_size, self.trg_vocab_size))
        smooth_target_distributions.fill_(self.smoothing_value / (self.trg_vocab_size - 2))
        smooth_target_distributions.scatter_(1, trg_token_ids_batch, self.confidence_value)
        smooth_target_distributions[:, self.pad_token_id] = 0.0
        smooth_target_distributions.masked_fill_(trg_token_ids_batch == self.pad_token_id, 0.0)
        return smooth_target_distributions


def notebook_loss(logits, tgt_out, smoothing, pad_id):
    """train_epoch's loss: log-softmax rows (B*T x V), KLDivLoss('batchmean') to the smoothed targets."""
    log_probs = F.log_softmax(logits.double(), -1).reshape(-1, logits.shape[-1])
    target = LabelSmoothingDistribution(smoothing, pad_id, logits.shape[-1])(tgt_out.reshape(-1, 1))
    return torch.nn.KLDivLoss(reduction="batchmean")(log_probs, target.double())


@pytest.mark.parametrize("smoothing", [0.1, 0.0, 0.3])
@pytest.mark.parametrize("pad_id", [0, 1])
def test_reference_loss_is_the_notebooks(smoothing, pad_id):
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 7, 12, generator=gen, requires_grad=True)
    tgt = torch.randint(2, 12, (4, 7), generator=gen)
    tgt[0, 4:], tgt[2, 1:] = pad_id, pad_id  # padded rows: ignored, but counted by batchmean
    tgt[1, 0] = 1 - pad_id  # a true class next to the pad column
    ours = rt.reference_loss(logits, tgt, smoothing, pad_id)
    literal = notebook_loss(logits, tgt, smoothing, pad_id)
    assert ours.item() == pytest.approx(literal.item(), rel=1e-5)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_lit,) = torch.autograd.grad(literal, logits)
    torch.testing.assert_close(g_ours.double(), g_lit.double(), rtol=1e-4, atol=1e-7)
    # not cross_entropy's smoothing, nor its mean over real tokens
    ce = F.cross_entropy(
        logits.flatten(0, 1), tgt.flatten(), ignore_index=pad_id, label_smoothing=smoothing
    )
    assert abs(ce.item() - ours.item()) > 1e-3


def test_translation_step_uses_the_chosen_loss_in_training_only():
    hp = tiny_hparams("translation")
    assert hp["loss"] == "kl"
    torch.manual_seed(0)
    model = rt.build_model({**hp, "vocab_size": 30}).eval()  # eval: no dropout, same logits twice
    gen = torch.Generator().manual_seed(1)
    src = torch.randint(4, 30, (3, 6), generator=gen)
    tgt = torch.randint(4, 30, (3, 6), generator=gen)
    tgt[:, 0], tgt[0, 4:] = 2, 0
    batch = (src, tgt[:, :-1], tgt[:, 1:])
    logits = model(src, tgt[:, :-1])
    plain = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=0)
    out = rt.step(model, batch)
    assert out["loss"].item() == pytest.approx(plain.item()) and out["count"] == 13
    model.train = lambda mode=True: model  # noqa: E731  (training mode without dropout's noise)
    model.training = True
    assert rt.step(model, batch)["loss"].item() == pytest.approx(
        rt.reference_loss(logits, tgt[:, 1:], 0.1).item()
    )
    model.loss_form = "ce"
    assert rt.step(model, batch)["loss"].item() == pytest.approx(
        F.cross_entropy(
            logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=0, label_smoothing=0.1
        ).item()
    )


# -- the reference's BLEU ---------------------------------------------------------------------
def test_nltk_bleu_matches_a_hand_computation():
    """Two sentences, spaCy words, <bos>/<eos> on both sides, out-of-vocabulary words as <unk>.
    hyp 1: <bos> A dog runs . <eos>   ref 1: <bos> A dog runs fast . <eos>
    hyp 2: <bos> Two <unk> sit <eos>  ref 2: <bos> Two <unk> sit . <eos>  ("cats" unseen in training;
    hyp 2 has no final period). Clipped n-gram matches / hypothesis n-grams over the corpus:
    1-grams 6+5 / 6+5, 2-grams 4+3 / 5+4, 3-grams 2+2 / 4+3, 4-grams 1+1 / 3+2; lengths 11 against
    references of 7 + 6 = 13: brevity penalty exp(1 - 13/11)."""
    vocab = {"A", "dog", "runs", "fast", ".", "Two", "sit"}
    hyps, refs = ["A dog runs.", "Two cats sit"], ["A dog runs fast.", "Two cats sit."]
    assert rt.words(hyps, "en") == [["A", "dog", "runs", "."], ["Two", "cats", "sit"]]
    p = [11 / 11, 7 / 9, 4 / 7, 2 / 5]
    expected = math.exp(1 - 13 / 11) * math.exp(sum(math.log(x) for x in p) / 4)
    assert rt.nltk_bleu(hyps, refs, "en", vocab) == pytest.approx(expected)
    # hyp 2 not ended by the model (no <eos>): 1-grams 6+4 / 6+4, 2-grams 4+3 / 5+3, 3-grams
    # 2+2 / 4+2, 4-grams 1+1 / 3+1, length 10
    p = [10 / 10, 7 / 8, 4 / 6, 2 / 4]
    expected = math.exp(1 - 13 / 10) * math.exp(sum(math.log(x) for x in p) / 4)
    assert rt.nltk_bleu(hyps, refs, "en", vocab, finished=[True, False]) == pytest.approx(expected)
    assert rt.nltk_bleu(refs, refs, "en", vocab) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        rt.nltk_bleu(hyps, refs[:1], "en", vocab)


def test_train_vocab_is_the_target_sides_words(tmp_path):
    inputs = FAMILY_INPUTS["translation"](tmp_path)
    root = Path(json.loads(Path(inputs["data"]).read_text())["root"])
    de, en = rt.train_vocab(root, "de"), rt.train_vocab(root, "en")
    assert {"Hund", "Männer", "."} <= de and "dog" not in de
    assert {"dog", "men", "."} <= en and "Hund" not in en
    assert de == {w for s in text.read_side(root, "train", "de") for w in rt.words([s], "de")[0]}


def nlp_summary(tmp_path=None):
    """A summary of NLP runs with known metrics: the char-LM's one configuration, the
    translator's two, 3 variants, 2 seeds."""
    import pandas as pd

    rows = []
    for family, task, cfgs in (
        ("charlm", "shakespeare", ["d16-l1-h2"]),
        ("translation", "multi30k_en_de", ["d16-l1-h2", "d32-l1-h2"]),
    ):
        for c, cfg in enumerate(cfgs):
            for a, att in enumerate(["qkv", "kv_pos", "kv"]):
                for seed in (0, 1):
                    value = 1.0 + 0.1 * a + 0.01 * seed + 0.2 * c
                    row = {
                        "family": family,
                        "task": task,
                        "cfg": cfg,
                        "attention": att,
                        "seed": seed,
                        "d_model": 16 * (c + 1),
                        "depth": 1,
                        "heads": 2,
                        "n_params": 100 + a,
                        "run_dir": str((tmp_path or Path(".")) / task / cfg / att / f"seed{seed}"),
                    }
                    if task == "shakespeare":
                        row.update(test_loss=value, test_bpc=value / math.log(2))
                    else:
                        row.update(test_bleu=10 * value, test_bleu_nltk=value / 10)
                    rows.append(row)
    return pd.DataFrame(rows)


def test_nlp_table_scores_each_task_by_its_own_metrics():
    """char-LM and translation: two families, one report group (the paper's NLP table)."""
    from kvt.families import FAMILIES, GROUPS
    from kvt.report.tables import paper_markdown, paper_table

    table = paper_table(nlp_summary())
    assert list(dict.fromkeys(zip(table["task"], table["metric"]))) == [
        ("shakespeare", "test_loss"),
        ("shakespeare", "test_bpc"),
        ("multi30k_en_de", "test_bleu"),
        ("multi30k_en_de", "test_bleu_nltk"),
    ]
    assert "mean" not in set(table["task"])  # the tasks' metrics differ: no mean over tasks
    bleu = table[(table["metric"] == "test_bleu") & (table["attention"] == "kv")].iloc[0]
    assert bleu["mean"] == pytest.approx(10 * (1.2 + 0.005 + 0.1)) and bleu["n_configs"] == 2
    ref = table.set_index(["metric", "attention"])["paper_mean"]
    paper = FAMILIES["charlm"].table.reference_of("shakespeare", "kv_pos", "test_loss")
    assert GROUPS["nlp"].table.reference_of("shakespeare", "kv_pos", "test_loss") == paper
    assert ref["test_loss", "kv_pos"] == pytest.approx(paper[0])  # the recipe's reference number
    assert table.equals(paper_table(nlp_summary(), "nlp"))
    md = paper_markdown(table, GROUPS["nlp"])
    assert "| shakespeare (loss) |" in md and "| multi30k_en_de (bleu) |" in md
    assert "| multi30k_en_de (bleu_nltk) |" in md


def test_curve_figure_draws_a_metric_per_epoch(tmp_path):
    import numpy as np
    import pandas as pd
    from kvt.report.figures import curve_figure, write_figure

    summary = nlp_summary(tmp_path)
    runs = summary[summary["task"] == "multi30k_en_de"]
    metrics = {
        d: pd.DataFrame(
            {
                "step": [0, 10, 20],
                "epoch": [0.0, 1.0, 2.0],
                "wall_time": [0, 1, 2],
                "train_loss": [float("nan"), 2, 1],
                "val_loss": [3, 2, 1],
                "val_bleu": [0, 5 + i, 9 + i],
                "lr": [1e-3] * 3,
            }
        )
        for i, d in enumerate(runs["run_dir"])
    }
    fig = curve_figure(runs, metrics, "multi30k_en_de", "val_bleu", "validation BLEU", "nlp")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["d16-l1-h2", "d32-l1-h2"]
    for ax in panels:  # one mean curve per variant, from epoch 0 to 2
        assert len(ax.lines) == 3 and all(line.get_xdata()[-1] == 2.0 for line in ax.lines)
    order = list(dict.fromkeys(runs["run_dir"]))
    kv_pos_last = np.mean(
        [
            9 + order.index(d)
            for d in runs[(runs["cfg"] == "d16-l1-h2") & (runs["attention"] == "kv_pos")]["run_dir"]
        ]
    )
    assert panels[0].lines[1].get_ydata()[-1] == pytest.approx(kv_pos_last)
    write_figure(
        summary,
        "nlp",
        "multi30k_en_de",
        "curve",
        tmp_path / "b.png",
        tmp_path / "b.pdf",
        metrics=metrics,
        column="val_bleu",
        label="validation BLEU",
    )
    assert (tmp_path / "b.png").stat().st_size > 10_000
