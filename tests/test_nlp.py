"""The NLP family's runtime: the data rule's checks (a truncated or altered file stops it and is
never used), the per-task training choices, the eval job's sample and translations, and the
settings that need more than the schema."""

import json
import math
from pathlib import Path

import pytest
import torch

from kvt import runner
from kvt.config import ConfigError, load_schema, resolve
from kvt.data import text
from kvt.data.integrity import verified_root
from kvt.experiments import nlp as rt

from conftest import FAMILY_INPUTS, tiny_hparams

CPU = torch.device("cpu")
MIRROR = next((p for p in (Path(__file__).resolve().parents[2] / "shared/data/mirror",
                           Path("/work/shared/data/mirror")) if (p / "SHA256SUMS").is_file()), None)


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
    inputs = FAMILY_INPUTS["nlp.shakespeare"](tmp_path)
    info = json.loads(Path(inputs["data"]).read_text())
    path = Path(info["root"]) / text.SHAKESPEARE
    path.write_text(path.read_text().upper())
    verified_root.cache_clear()
    with pytest.raises(text.ChecksumError, match="changed since the data rule"):
        runner.train(tiny_hparams("nlp.shakespeare"), tmp_path / "run", tmp_path / "run/model.pt",
                     CPU, inputs=inputs)


def test_tasks_train_and_select_as_the_protocol_says():
    lm, mt = tiny_hparams("nlp.shakespeare"), tiny_hparams("nlp")
    assert rt.SELECT_ON(lm) == ("val_loss", "min") and rt.SELECT_ON(mt) == ("val_bleu", "max")
    c = runner.train_config(lm)
    assert (c.optimizer, c.schedule, c.iterations, c.epochs) == ("adamw", "constant", 12, None)
    c = runner.train_config(mt)
    assert (c.optimizer, c.schedule, c.betas, c.eps) == ("adam", "noam", (0.9, 0.98), 1e-9)
    assert c.lr == pytest.approx(16 ** -0.5 * 5 ** -0.5)  # lr null: Noam's d^-0.5 warmup^-0.5
    assert runner.train_config({**mt, "lr": 0.003}).lr == 0.003


def test_consecutive_blocks_score_every_character_once():
    ids = torch.arange(103)
    batches = list(rt._consecutive_blocks(ids, 10, 4)())
    xs = torch.cat([x.flatten() for x, _ in batches])
    ys = torch.cat([y.flatten() for _, y in batches])
    assert torch.equal(xs, ids[:-1]) and torch.equal(ys, ids[1:])


def test_charlm_run_scores_the_val_text_and_writes_a_seeded_sample(tmp_path):
    inputs = FAMILY_INPUTS["nlp.shakespeare"](tmp_path)
    hp = tiny_hparams("nlp.shakespeare")
    runner.train(hp, tmp_path / "run", tmp_path / "run/model.pt", CPU, inputs=inputs)
    result = runner.test(tmp_path / "run/model.pt", tmp_path / "out/test.json", CPU, inputs=inputs)
    assert result["test_bpc"] == pytest.approx(result["test_loss"] / math.log(2))
    sample = (tmp_path / "out/sample.txt").read_text()
    assert len(sample) == hp["sample_chars"]
    assert set(sample) <= set(rt._chars(rt._root(inputs))[0].chars)
    runner.test(tmp_path / "run/model.pt", tmp_path / "again/test.json", CPU, inputs=inputs)
    assert (tmp_path / "again/sample.txt").read_text() == sample


def test_translation_run_saves_its_test_translations_and_their_bleu(tmp_path):
    import sacrebleu

    inputs = FAMILY_INPUTS["nlp"](tmp_path)
    hp = tiny_hparams("nlp")
    record = runner.train(hp, tmp_path / "run", tmp_path / "run/model.pt", CPU, inputs=inputs)
    assert "val_bleu" in record["selected"]
    result = runner.test(tmp_path / "run/model.pt", tmp_path / "out/test.json", CPU, inputs=inputs)
    hyps = (tmp_path / "out/translations.txt").read_text().split("\n")[:-1]
    refs = [t for _, t in text.read_pairs(json.loads(Path(inputs["data"]).read_text())["root"], "test")]
    assert len(hyps) == len(refs) == 60
    assert result["test_bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert result["test_bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert not any(s in h for h in hyps for s in ("<bos>", "<eos>", "<pad>"))


def test_source_and_target_must_differ():
    base = {"preset": "paper", "presets": {"paper": {}}}
    with pytest.raises(ConfigError, match="source and target are both 'en'"):
        resolve(base, {"nlp": {"multi30k": {"source": "en"}}}, load_schema())


def nlp_summary(tmp_path=None):
    """A summary of NLP runs with known metrics: the char-LM's one configuration, the
    translator's two, 3 variants, 2 seeds."""
    import pandas as pd

    rows = []
    for task, cfgs in (("shakespeare", ["d16-l1-h2"]), ("multi30k", ["d16-l1-h2", "d32-l1-h2"])):
        for c, cfg in enumerate(cfgs):
            for a, att in enumerate(["qkv", "kv_pos", "kv"]):
                for seed in (0, 1):
                    value = 1.0 + 0.1 * a + 0.01 * seed + 0.2 * c
                    row = {"family": "nlp", "task": task, "cfg": cfg, "attention": att, "seed": seed,
                           "d_model": 16 * (c + 1), "depth": 1, "heads": 2, "n_params": 100 + a,
                           "run_dir": str((tmp_path or Path(".")) / task / cfg / att / f"seed{seed}")}
                    if task == "shakespeare":
                        row.update(test_loss=value, test_bpc=value / math.log(2))
                    else:
                        row.update(test_bleu=10 * value)
                    rows.append(row)
    return pd.DataFrame(rows)


def test_nlp_table_scores_each_task_by_its_own_metrics():
    from kvt.families import FAMILIES
    from kvt.report.tables import paper_markdown, paper_table

    table = paper_table(nlp_summary())
    assert list(dict.fromkeys(zip(table["task"], table["metric"]))) == [
        ("shakespeare", "test_loss"), ("shakespeare", "test_bpc"), ("multi30k", "test_bleu")]
    assert "mean" not in set(table["task"])  # the tasks' metrics differ: no mean over tasks
    bleu = table[(table["metric"] == "test_bleu") & (table["attention"] == "kv")].iloc[0]
    assert bleu["mean"] == pytest.approx(10 * (1.2 + 0.005 + 0.1)) and bleu["n_configs"] == 2
    ref = table.set_index(["metric", "attention"])["paper_mean"]
    assert ref["test_loss", "kv_pos"] == 1.5187 and math.isnan(ref["test_loss", "qkv"])
    md = paper_markdown(table, FAMILIES["nlp"])
    assert "| shakespeare (loss) |" in md and "| multi30k (bleu) |" in md and "NOT comparable" in md


def test_curve_figure_draws_a_metric_per_epoch(tmp_path):
    import numpy as np
    import pandas as pd

    from kvt.report.figures import curve_figure, write_figure

    summary = nlp_summary(tmp_path)
    runs = summary[summary["task"] == "multi30k"]
    metrics = {d: pd.DataFrame({"step": [0, 10, 20], "epoch": [0.0, 1.0, 2.0], "wall_time": [0, 1, 2],
                                "train_loss": [float("nan"), 2, 1], "val_loss": [3, 2, 1],
                                "val_bleu": [0, 5 + i, 9 + i], "lr": [1e-3] * 3})
               for i, d in enumerate(runs["run_dir"])}
    fig = curve_figure(runs, metrics, "multi30k", "val_bleu", "validation BLEU", "nlp")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["d16-l1-h2", "d32-l1-h2"]
    for ax in panels:  # one mean curve per variant, from epoch 0 to 2
        assert len(ax.lines) == 3 and all(line.get_xdata()[-1] == 2.0 for line in ax.lines)
    order = list(dict.fromkeys(runs["run_dir"]))
    kv_pos_last = np.mean([9 + order.index(d) for d in runs[(runs["cfg"] == "d16-l1-h2")
                                                            & (runs["attention"] == "kv_pos")]["run_dir"]])
    assert panels[0].lines[1].get_ydata()[-1] == pytest.approx(kv_pos_last)
    write_figure(summary, "nlp", "multi30k", "curve", tmp_path / "b.png", tmp_path / "b.pdf",
                 metrics=metrics, column="val_bleu", label="validation BLEU")
    assert (tmp_path / "b.png").stat().st_size > 10_000
