"""Paired statistics of the variants (kvt.report.paired): runs paired by (configuration, seed),
the mean difference with a seeded bootstrap interval, Wilcoxon and sign tests, the direction of
each metric, and the figure of the differences to qkv."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kvt.report.paired import bootstrap_ci, comparisons, paired_table, write_paired

CFGS = ["n8-d16-l1-h2", "n16-d16-l1-h2"]


def summary_of(values: dict, family="synthetic", task="sort", metric="test_acc") -> pd.DataFrame:
    """values: {(cfg, attention, seed): metric value}."""
    return pd.DataFrame([{"family": family, "task": task, "cfg": c, "attention": a, "seed": s,
                          metric: v} for (c, a, s), v in values.items()])


def test_comparisons_are_against_qkv_and_kv_pos_against_kv():
    assert comparisons(["kv", "qkv", "kv_pos"]) == [("kv_pos", "qkv"), ("kv", "qkv"), ("kv_pos", "kv")]
    assert comparisons(["kv", "kv_pos"]) == [("kv_pos", "kv")]
    assert comparisons(["qkv", "qkv_pos"]) == [("qkv_pos", "qkv")]


def test_pairs_share_configuration_and_seed():
    rng = np.random.default_rng(3)
    values = {}
    for c in CFGS:
        for s in range(5):
            base = rng.uniform(0.5, 0.9)  # what the configuration and seed make of any variant
            values[c, "qkv", s] = base
            values[c, "kv", s] = base - 0.01 * (s + 1)  # kv worse by a known amount each time
    table = paired_table(summary_of(values))
    row = table[(table["variant"] == "kv") & (table["baseline"] == "qkv")].iloc[0]
    diffs = np.array([-0.01 * (s + 1) for _ in CFGS for s in range(5)])
    assert row["n_pairs"] == 10 and row["n_configs"] == 2
    assert row["mean_diff"] == pytest.approx(diffs.mean())
    assert (row["wins"], row["losses"], row["ties"]) == (0, 10, 0)
    assert row["sign_p"] == pytest.approx(2 * 0.5 ** 10)
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    assert row["ci_high"] < 0 and row["excludes_zero"] and row["verdict"] == "kv worse"
    # unpaired, the spread between configurations and seeds (0.5-0.9) would swamp 0.01-0.05
    del values[CFGS[0], "kv", 4]
    row = paired_table(summary_of(values)).iloc[0]
    assert row["n_pairs"] == 9  # a run without its partner is left out
    few = {k: v for k, v in values.items() if k[2] < 2 and k[0] == CFGS[0]}
    row = paired_table(summary_of(few)).iloc[0]
    assert row["excludes_zero"] and row["verdict"] == "no clear difference"  # 2 pairs: no verdict


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    diffs = np.array([0.1, -0.2, 0.05, 0.3, 0.0, 0.15])
    a, b = bootstrap_ci(diffs, seed=1), bootstrap_ci(diffs, seed=1)
    assert a == b and a[0] < diffs.mean() < a[1]
    many = np.random.default_rng(5).standard_normal(40)  # a finer grid of resampled means
    assert bootstrap_ci(many, seed=2) != bootstrap_ci(many, seed=1)
    assert bootstrap_ci(np.full(4, 0.25)) == (pytest.approx(0.25), pytest.approx(0.25))


def test_lower_is_better_for_losses_and_noise_has_no_verdict():
    rng = np.random.default_rng(0)
    values = {(c, a, s): 2.0 + (0.1 if a == "qkv" else 0.0) + 0.001 * rng.standard_normal()
              for c in CFGS for a in ("qkv", "kv") for s in range(3)}
    for c in CFGS:
        for s in range(3):
            values[c, "kv_pos", s] = values[c, "kv", s] + 0.001 * rng.standard_normal()
    table = paired_table(summary_of(values, "nlp", "shakespeare", "test_loss"))
    kv = table[(table["variant"] == "kv") & (table["baseline"] == "qkv")].iloc[0]
    assert not kv["higher_is_better"] and kv["mean_diff"] < 0 and kv["verdict"] == "kv better"
    assert table[table["baseline"] == "kv"].iloc[0]["ties"] == 0


def test_files_and_figure(tmp_path):
    values = {(c, a, s): 0.5 + 0.1 * ("kv" in a) + 0.01 * s for c in CFGS
              for a in ("qkv", "kv", "kv_pos") for s in range(3)}
    table = write_paired(summary_of(values), tmp_path / "p.csv", tmp_path / "p.md",
                         tmp_path / "p.png", tmp_path / "p.pdf")
    assert pd.read_csv(tmp_path / "p.csv")["mean_diff"].tolist() == pytest.approx(table["mean_diff"].tolist())
    md = (tmp_path / "p.md").read_text()
    assert "| synthetic | sort | acc | kv - qkv | 6 |" in md and "bootstrap" in md
    assert (tmp_path / "p.png").stat().st_size > 10_000
