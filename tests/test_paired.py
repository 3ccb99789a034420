"""Paired statistics of the variants (kvt.report.paired): runs paired by (configuration, seed),
the mean difference with a seeded bootstrap interval, the Hodges-Lehmann estimate, Wilcoxon (Holm-
adjusted across a family's comparisons) and sign tests, verdicts that cannot contradict their own
test, derived metrics reported but not tested again, the direction of each metric, and the figure
of the differences to qkv."""

import numpy as np
import pandas as pd
import pytest
from kvt.report.paired import (
    bootstrap_ci,
    comparisons,
    hodges_lehmann,
    holm,
    paired_table,
    write_paired,
)
from scipy import stats

CFGS = ["n8-d16-l1-h2", "n16-d16-l1-h2"]


def summary_of(values: dict, family="synthetic", task="sort", metric="test_acc") -> pd.DataFrame:
    """values: {(cfg, attention, seed): metric value}."""
    return pd.DataFrame(
        [
            {"family": family, "task": task, "cfg": c, "attention": a, "seed": s, metric: v}
            for (c, a, s), v in values.items()
        ]
    )


def test_comparisons_are_against_qkv_and_kv_pos_against_kv():
    assert comparisons(["kv", "qkv", "kv_pos"]) == [
        ("kv_pos", "qkv"),
        ("kv", "qkv"),
        ("kv_pos", "kv"),
    ]
    assert comparisons(["kv", "kv_pos"]) == [("kv_pos", "kv")]
    assert comparisons(["qkv", "qkv_pos"]) == [("qkv_pos", "qkv")]
    # the variants beyond the paper: each against qkv, the query-free ones against kv too
    assert comparisons(["kv_shared", "kv", "kv_rel", "qkv_pos", "qkv", "kv_pos"]) == [
        ("kv_pos", "qkv"),
        ("kv", "qkv"),
        ("qkv_pos", "qkv"),
        ("kv_rel", "qkv"),
        ("kv_shared", "qkv"),
        ("kv_pos", "kv"),
        ("kv_rel", "kv"),
        ("kv_shared", "kv"),
    ]
    assert comparisons(["kv", "unregistered"]) == []


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
    assert row["sign_p"] == pytest.approx(2 * 0.5**10)
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
    seeds = range(5)  # 10 pairs: three comparisons, Holm-adjusted, can still reach a verdict
    values = {
        (c, a, s): 2.0 + (0.1 if a == "qkv" else 0.0) + 0.001 * rng.standard_normal()
        for c in CFGS
        for a in ("qkv", "kv")
        for s in seeds
    }
    for c in CFGS:
        for s in seeds:
            values[c, "kv_pos", s] = values[c, "kv", s] + 0.001 * rng.standard_normal()
    table = paired_table(summary_of(values, "charlm", "shakespeare", "test_loss"))
    kv = table[(table["variant"] == "kv") & (table["baseline"] == "qkv")].iloc[0]
    assert not kv["higher_is_better"] and kv["mean_diff"] < 0 and kv["verdict"] == "kv better"
    noise = table[table["baseline"] == "kv"].iloc[0]
    assert noise["ties"] == 0 and noise["verdict"].startswith("no clear difference")


def test_a_few_large_wins_against_a_losing_majority_is_no_verdict():
    """The issue's example, the bimodal pattern of reverse and swap: 40 pairs at -0.001 and 8 at
    +0.5. The mean (+0.0825) and its interval say kv is better, the Wilcoxon test is significant
    because of the losing majority (its HL estimate is -0.001): no verdict may say "kv better"."""
    diffs = [-0.001] * 40 + [0.5] * 8
    values = {}
    for i, d in enumerate(diffs):
        values[f"n8-d16-l1-h{i}", "qkv", 0] = 0.5
        values[f"n8-d16-l1-h{i}", "kv", 0] = 0.5 + d
    row = paired_table(summary_of(values, task="reverse")).iloc[0]
    assert row["mean_diff"] == pytest.approx(0.0825) and row["ci_low"] > 0  # the mean says +
    assert row["hodges_lehmann"] == pytest.approx(-0.001)  # the pairs' centre says -
    assert row["wilcoxon_p_holm"] == row["wilcoxon_p"] < 0.05  # one comparison: nothing to adjust
    assert "better" not in row["verdict"] and "worse" not in row["verdict"]
    assert row["verdict"].startswith("mixed")


def test_hodges_lehmann_is_the_median_of_the_walsh_averages():
    diffs = np.array([0.3, -0.1, 0.0, 0.7, 0.2])
    walsh = [(diffs[i] + diffs[j]) / 2 for i in range(5) for j in range(i, 5)]  # 15 averages
    assert len(walsh) == 15
    assert hodges_lehmann(diffs) == pytest.approx(sorted(walsh)[7])
    assert hodges_lehmann(np.array([2.0])) == 2.0


def test_holm_against_a_literal_computation():
    # m = 4 tested p-values (NaN: not tested). Sorted: 0.005, 0.01, 0.03, 0.04; times 4, 3, 2, 1
    # gives 0.02, 0.03, 0.06, 0.04; made non-decreasing in that order: 0.02, 0.03, 0.06, 0.06.
    adjusted = holm([0.01, 0.04, np.nan, 0.03, 0.005])
    assert adjusted[[0, 1, 3, 4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[2])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # capped at 1


def test_holm_spans_the_family_and_derived_metrics_are_not_tested_again():
    """Every task and metric of a family adjusts together; bits per character (loss / ln 2) is
    reported beside the loss but adds no test to the correction."""
    rng = np.random.default_rng(1)
    values = {}
    for task in ("reverse", "sort"):
        for c in CFGS:
            for s in range(4):
                base = rng.uniform(0.5, 0.9)
                values[c, "qkv", s, task] = base
                values[c, "kv", s, task] = base - 0.01 - 0.001 * s
    summary = pd.DataFrame(
        [
            {"family": "synthetic", "task": t, "cfg": c, "attention": a, "seed": s, "test_acc": v}
            for (c, a, s, t), v in values.items()
        ]
    )
    table = paired_table(summary)
    assert len(table) == 2
    raw = table["wilcoxon_p"].to_numpy()
    assert table["wilcoxon_p_holm"].tolist() == pytest.approx(holm(raw).tolist())
    assert table["wilcoxon_p_holm"].min() == pytest.approx(2 * raw.min())  # two tests in the family
    loss = summary_of(
        {
            (c, a, s): 2.0 - (0.05 if a == "kv" else 0.0) + 0.01 * rng.standard_normal()
            for c in CFGS
            for a in ("qkv", "kv")
            for s in range(5)
        },
        "charlm",
        "shakespeare",
        "test_loss",
    )
    # as the runs compute it, from float32 sums: loss / ln 2 to about 1e-8
    loss["test_bpc"] = loss["test_loss"] / np.log(2) * (1 + 1e-8 * rng.standard_normal(len(loss)))
    table = paired_table(loss)
    bpc = table[table["metric"] == "test_bpc"].iloc[0]
    assert np.isnan(bpc["wilcoxon_p_holm"]) and bpc["derived_from"] == "test_loss"
    assert "not tested" in bpc["verdict"] and bpc["wilcoxon_p"] < 0.05  # reported, not judged
    row = table[table["metric"] == "test_loss"].iloc[0]
    assert row["wilcoxon_p_holm"] == row["wilcoxon_p"]  # the only test of the family


def test_files_and_figure(tmp_path):
    values = {
        (c, a, s): 0.5 + 0.1 * ("kv" in a) + 0.01 * s
        for c in CFGS
        for a in ("qkv", "kv", "kv_pos")
        for s in range(3)
    }
    table = write_paired(
        summary_of(values),
        tmp_path / "p.csv",
        tmp_path / "p.md",
        tmp_path / "p.png",
        tmp_path / "p.pdf",
    )
    assert pd.read_csv(tmp_path / "p.csv")["mean_diff"].tolist() == pytest.approx(
        table["mean_diff"].tolist()
    )
    md = (tmp_path / "p.md").read_text()
    assert "| synthetic | sort | acc | kv - qkv | 6 |" in md and "bootstrap" in md
    assert "Holm p" in md and "Hodges-Lehmann" in md
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_cpu_preset_seeds_are_the_fewest_that_can_give_a_synthetic_verdict():
    """Every pair of every comparison on the same side: with the cpu preset's synthetic
    configurations and seeds, Holm over all the family's comparisons still lets a verdict through;
    with one seed fewer it cannot."""
    from kvt.config import load_config
    from kvt.families import FAMILIES

    syn = FAMILIES["synthetic"]
    section = load_config({"preset": "cpu"})["synthetic"]
    tasks, seeds = section["tasks"], section["seeds"]
    cfgs = list(syn.configs(section, tasks[0]))

    def table(n_seeds):
        rng = np.random.default_rng(0)
        rows = [
            {
                "family": "synthetic",
                "task": t,
                "cfg": c,
                "attention": a,
                "seed": s,
                "test_acc": 0.5 + 0.01 * ["qkv", "kv", "kv_pos"].index(a) + rng.uniform(0, 0.005),
            }
            for t in tasks
            for c in cfgs
            for s in seeds[:n_seeds]
            for a in ("qkv", "kv", "kv_pos")
        ]
        return paired_table(pd.DataFrame(rows))

    full = table(len(seeds))
    assert len(full) == 3 * len(tasks) and (full["n_pairs"] == len(cfgs) * len(seeds)).all()
    assert (full["verdict"] != "no clear difference").all(), full[["wilcoxon_p_holm", "verdict"]]
    fewer = table(len(seeds) - 1)
    assert (fewer["verdict"] == "no clear difference").all()


def test_comparisons_with_every_pair_tied_are_not_counted_by_holm():
    """copy at the ceiling (every pair tied) beside sort with a real effect: the tied comparisons
    say so and leave Holm's count at sort's three comparisons."""
    rows = []
    for task in ("copy", "sort"):
        for c in CFGS:
            for s in range(5):
                for i, a in enumerate(("qkv", "kv", "kv_pos")):
                    acc = 1.0 if task == "copy" else 0.5 + 0.01 * i + 0.001 * s
                    rows.append(
                        {
                            "family": "synthetic",
                            "task": task,
                            "cfg": c,
                            "attention": a,
                            "seed": s,
                            "test_acc": acc,
                        }
                    )
    table = paired_table(pd.DataFrame(rows))
    copy, sort = table[table["task"] == "copy"], table[table["task"] == "sort"]
    assert (copy["verdict"] == "no difference (every pair tied)").all()
    assert (copy["wilcoxon_p_holm"] == 1.0).all()
    raw = sort["wilcoxon_p"].to_numpy()
    assert sort["wilcoxon_p_holm"].to_numpy() == pytest.approx(holm(raw))  # m = 3, not 6
    assert (sort["verdict"] != "no clear difference").all()
