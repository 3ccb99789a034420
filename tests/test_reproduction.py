"""Paper versus reproduction (kvt.report.reproduction): every number the paper gives beside ours,
the difference, the spread check, and the references that are not comparable."""

import math

import pandas as pd
import pytest

from kvt.report.reproduction import reproduction_table, write_reproduction


def runs(family, task, metric, values: dict) -> list[dict]:
    """values: {(cfg, attention): [per-seed values]}."""
    return [{"family": family, "task": task, "cfg": c, "attention": a, "seed": s, metric: v,
             "d_model": 16, "depth": 1, "heads": 2, "seq_len": 8}
            for (c, a), vs in values.items() for s, v in enumerate(vs)]


def test_synthetic_cells_beside_ours_with_the_spread_check(tmp_path):
    # sort: the paper's qkv 0.9708 (0.033), kv 0.9664 (0.035)
    rows = runs("synthetic", "sort", "test_acc", {("n8-d16-l1-h2", "qkv"): [0.96, 0.98],
                                                   ("n16-d16-l1-h2", "qkv"): [0.95, 0.97],
                                                   ("n8-d16-l1-h2", "kv"): [0.80, 0.82],
                                                   ("n16-d16-l1-h2", "kv"): [0.84, 0.86]})
    table = write_reproduction(pd.DataFrame(rows), tmp_path / "r.csv", tmp_path / "r.md")
    qkv = table[(table["task"] == "sort") & (table["attention"] == "qkv")].iloc[0]
    assert (qkv["paper_mean"], qkv["paper_std"]) == (0.9708, 0.033)
    assert qkv["ours_mean"] == pytest.approx(0.965) and qkv["n_runs"] == 4
    assert qkv["difference"] == pytest.approx(0.965 - 0.9708) and qkv["within_paper_spread"]
    kv = table[(table["task"] == "sort") & (table["attention"] == "kv")].iloc[0]
    assert kv["difference"] == pytest.approx(0.83 - 0.9664) and not kv["within_paper_spread"]
    mean = table[table["task"] == "mean"]
    assert set(mean["attention"]) == {"qkv", "kv"} and (mean["source"] == "the paper (mean row)").all()
    md = (tmp_path / "r.md").read_text()
    assert "| synthetic | sort | acc | kv | 0.9664 (0.035) | 0.83 (" in md and "| no |" in md


def test_one_run_references_and_incomparable_numbers_are_not_judged():
    rows = (runs("nlp", "multi30k", "test_bleu", {("d16-l1-h2", "kv_pos"): [20.0, 22.0]})
            + runs("nlp", "shakespeare", "test_loss", {("d16-l1-h2", "kv_pos"): [1.6, 1.7]})
            + runs("anomaly", "cifar100", "test_acc", {("d16-l1-h2", "qkv"): [0.9, 0.92]}))
    summary = pd.DataFrame(rows)
    summary.loc[summary["task"] == "shakespeare", "test_bpc"] = summary["test_loss"] / math.log(2)
    table = reproduction_table(summary).set_index(["task", "metric"])
    bleu = table.loc["multi30k", "test_bleu"]
    assert not bleu["comparable"] and math.isnan(bleu["difference"]) and bleu["within_paper_spread"] is None
    assert "nltk" in bleu["source"]
    loss = table.loc["shakespeare", "test_loss"]
    assert loss["difference"] == pytest.approx(1.65 - 1.5187) and loss["within_paper_spread"] is None
    tutorial = table.loc["cifar100", "test_acc"]
    assert tutorial["paper_mean"] == 0.94 and "tutorial" in tutorial["source"]
