"""The report layer on a fake results tree with known accuracies: summary rows, the paper table's
two-stage mean/std, the files written, errors that name the bad file, figures and run diffs."""

import json
import math
import runpy
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kvt.report import paper
from kvt.report.figures import seed_band, write_figure
from kvt.report.summary import collect, diff_runs, read_summary, score_columns, write_summary
from kvt.report.tables import (
    by_config_table,
    paper_table,
    params_table,
    write_by_config,
    write_paper_table,
    write_params,
    write_tables,
)

REPO = Path(__file__).resolve().parents[1]
TASKS = ["reverse", "sort"]
VARIANTS = ["qkv", "kv", "kv_pos"]
CFGS = {"n16-d32-l1-h2": (16, 32, 1, 2), "n32-d64-l2-h4": (32, 64, 2, 4)}
SEEDS = [0, 1]
KEYS = [(t, c, a, s) for t in TASKS for c in CFGS for a in VARIANTS for s in SEEDS]
# Known, irregular per-run test accuracies (fixed, so every hand computation below is reproducible).
ACC = dict(zip(KEYS, np.round(np.random.default_rng(7).uniform(0.3, 1.0, len(KEYS)), 4).tolist()))
N_PARAMS = {"qkv": 1000, "kv": 800, "kv_pos": 811}


def fake_run(root: Path, task, cfg, att, seed, acc, *, select="best", hp_extra=None, points=6):
    """Write run.json, metrics.csv and test.json of one run in the trainer's and eval's formats."""
    n, d, depth, heads = CFGS.get(cfg, (64, 64, 2, 2))
    run_dir = root / "synthetic" / task / cfg / att / f"seed{seed}"
    run_dir.mkdir(parents=True)
    steps = [10 * i for i in range(points)]
    speed = {"qkv": 1.0, "kv": 0.8, "kv_pos": 0.9}.get(att, 1.0) * (1 + 0.1 * seed) * depth
    val_acc = [0.1 + (acc - 0.1) * (1 - math.exp(-i)) for i in range(points)]
    rows = [
        {
            "step": s,
            "epoch": s / 20,
            "wall_time": round(s * 0.05 * speed, 3),
            "train_loss": float("nan") if i == 0 else 2.3 * math.exp(-0.8 * i) + 0.01,
            "val_loss": 2.3 * math.exp(-0.7 * i) + 0.02,
            "val_acc": val_acc[i],
            "lr": 1e-3,
        }
        for i, s in enumerate(steps)
    ]
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)
    best = max(range(points), key=lambda i: val_acc[i]) if select == "best" else points - 1
    selected = {"step": steps[best], "select": select}
    if select == "best":
        selected.update(val_acc=rows[best]["val_acc"], val_loss=rows[best]["val_loss"])
    hp = {
        "family": "synthetic",
        "task": task,
        "attention": att,
        "seed": seed,
        "cfg": cfg,
        "seq_len": n,
        "d_model": d,
        "depth": depth,
        "heads": heads,
        "train_size": 500,
        "val_size": 100,
        "test_size": 100,
        "epochs": 2,
        "batch_size": 50,
        "lr": 1e-3,
        "warmup_steps": 5,
        "grad_clip": 5.0,
        "dropout": 0.1,
        "val_per_epoch": 4,
        "select": select,
        "scale": "head",
        "pos_dim": 10,
        "pos_per_head": False,
        "sdpa": True,
        **(hp_extra or {}),
    }
    run = {
        "status": "done",
        "hparams": hp,
        "n_params": N_PARAMS.get(att, 500),
        "git_commit": "abc123",
        "git_dirty": False,
        "torch": "2.5.0",
        "python": "3.11.9",
        "device": "cpu",
        "device_name": "x86_64",
        "host": "node1",
        "slurm_job_id": None,
        "threads": 2,
        "start_time": "2024-01-01T00:00:00+00:00",
        "end_time": "2024-01-01T00:01:00+00:00",
        "resumed_at": [],
        "selected": selected,
        "steps": steps[-1],
        "train_seconds": rows[-1]["wall_time"],
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    test = {
        "test_acc": acc,
        "test_loss": -math.log(acc),
        "test_size": 100,
        "step": steps[best],
        "select": select,
        "n_params": run["n_params"],
    }
    (run_dir / "test.json").write_text(json.dumps(test, indent=2))
    return run_dir


def make_tree(root: Path, keys=KEYS):
    dirs = [fake_run(root, *key, ACC[key]) for key in keys]
    return root, [d / "run.json" for d in dirs], [d / "test.json" for d in dirs]


@pytest.fixture
def tree(tmp_path):
    """A fresh small tree, for tests that damage it."""
    return make_tree(tmp_path / "results", KEYS[:8])


@pytest.fixture(scope="module")
def shared_tree(tmp_path_factory):
    """One tree for the tests that only read it."""
    return make_tree(tmp_path_factory.mktemp("shared") / "results")


@pytest.fixture(scope="module")
def shared_summary(shared_tree):
    return collect(shared_tree[1], shared_tree[2])


@pytest.fixture
def summary(shared_summary):
    return shared_summary.copy()


def hand_cell(acc: dict, task, att):
    """Mean over seeds per configuration, then mean and population std across configurations."""
    cfg_means = []
    for cfg in CFGS:
        vals = [v for (t, c, a, s), v in acc.items() if (t, c, a) == (task, cfg, att)]
        cfg_means.append(sum(vals) / len(vals))
    mean = sum(cfg_means) / len(cfg_means)
    return mean, math.sqrt(sum((m - mean) ** 2 for m in cfg_means) / len(cfg_means))


def cell(table, task, att):
    return table[(table["task"] == task) & (table["attention"] == att)].iloc[0]


# -- summary ---------------------------------------------------------------------------------
def test_summary_has_one_row_per_run_with_its_values(summary, tree):
    assert len(summary) == len(KEYS)
    assert not summary.duplicated(["task", "cfg", "attention", "seed"]).any()
    for key in KEYS:
        row = summary.set_index(["task", "cfg", "attention", "seed"]).loc[key]
        metrics = pd.read_csv(Path(row["run_dir"]) / "metrics.csv")
        assert row["test_acc"] == pytest.approx(ACC[key])
        assert row["test_loss"] == pytest.approx(-math.log(ACC[key]))
        assert row["n_params"] == N_PARAMS[key[2]]
        assert (row["seq_len"], row["d_model"], row["depth"], row["heads"]) == CFGS[key[1]]
        assert row["final_val_acc"] == pytest.approx(metrics["val_acc"].iloc[-1])
        best = metrics["val_acc"].idxmax()
        assert row["best_step"] == metrics["step"][best]
        assert row["val_acc"] == pytest.approx(metrics["val_acc"][best])
        assert row["family"] == "synthetic" and row["lr"] == 1e-3 and row["host"] == "node1"
        assert Path(row["run_dir"]).parts[-4:] == (key[0], key[1], key[2], f"seed{key[3]}")
    for col in [
        "steps",
        "train_seconds",
        "val_loss",
        "final_val_loss",
        "git_commit",
        "git_dirty",
        "torch",
        "device",
        "device_name",
        "start_time",
        "end_time",
        "slurm_job_id",
    ]:
        assert col in summary.columns


def test_summary_round_trips_through_csv(summary, tmp_path):
    write_summary(summary, tmp_path / "summary.csv")
    back = read_summary(tmp_path / "summary.csv")
    assert len(back) == len(summary)
    assert np.allclose(back["test_acc"], summary["test_acc"])


def test_select_last_takes_val_scores_of_the_last_row(tmp_path):
    d = fake_run(tmp_path, "copy", "n16-d32-l1-h2", "kv", 0, 0.9, select="last")
    row = collect([d / "run.json"], [d / "test.json"]).iloc[0]
    last = pd.read_csv(d / "metrics.csv").iloc[-1]
    assert row["val_acc"] == pytest.approx(last["val_acc"]) and row["best_step"] == last["step"]


def test_score_columns_are_every_val_and_test_metric(tmp_path):
    """Scores: val_<metric> of the selected weights, final_val_<metric> of the last validation, and
    every test_* of test.json but test_size (the hparam keeps that name)."""
    d = fake_run(tmp_path, "sort", "n16-d32-l1-h2", "kv", 0, 0.8, hp_extra={"test_size": 300})
    metrics = pd.read_csv(d / "metrics.csv")
    metrics["val_f1"] = np.linspace(0.2, 0.6, len(metrics))
    metrics.to_csv(d / "metrics.csv", index=False)
    run = json.loads((d / "run.json").read_text())
    best = 2  # selected weights of a validation before the last
    run["selected"] = {
        "step": int(metrics["step"][best]),
        "select": "best",
        **{c: float(metrics[c][best]) for c in ("val_loss", "val_acc", "val_f1")},
    }
    (d / "run.json").write_text(json.dumps(run))
    test = {**json.loads((d / "test.json").read_text()), "step": int(metrics["step"][best])}
    (d / "test.json").write_text(json.dumps({**test, "test_f1": 0.42, "test_bits": 1.5}))
    summary = collect([d / "run.json"], [d / "test.json"])
    row = summary.iloc[0]
    assert row["best_step"] == metrics["step"][best]
    for c in ("val_f1", "val_acc", "val_loss"):
        assert row[c] == pytest.approx(metrics[c][best]), c
    assert best != len(metrics) - 1 and row["final_val_f1"] == pytest.approx(
        metrics["val_f1"].iloc[-1]
    )
    assert (row["test_f1"], row["test_bits"], row["test_acc"]) == (0.42, 1.5, 0.8)
    assert row["test_size"] == 300 and "hp.test_size" not in summary.columns  # from the hparams
    cols = list(summary.columns)
    scores = cols[cols.index("best_step") + 1 : cols.index("status")]
    assert set(scores) == {
        "val_loss",
        "val_acc",
        "val_f1",
        "final_val_loss",
        "final_val_acc",
        "final_val_f1",
        "test_acc",
        "test_loss",
        "test_f1",
        "test_bits",
    }
    assert cols.index("test_size") < cols.index("n_params")  # among the settings, not the scores
    other = fake_run(
        tmp_path / "b", "sort", "n16-d32-l1-h2", "kv", 0, 0.8, hp_extra={"test_size": 200}
    )
    (other / "test.json").write_text(
        json.dumps({**json.loads((other / "test.json").read_text()), "test_f1": 0.5})
    )
    both = collect([d / "run.json", other / "run.json"], [d / "test.json", other / "test.json"])
    diff = diff_runs(both, str(d), str(other))
    assert diff.loc["test_f1", "kind"] == "metric" and diff.loc["test_size", "kind"] == "param"
    assert np.isnan(both.set_index("run_dir").loc[str(other), "test_bits"])  # absent: empty


def test_last_weights_scores_are_columns_beside_the_selected(tmp_path):
    """test.json holds test_<m> of the selected weights and last_test_<m> of the last ones (and
    the last step): both become score columns; a last step other than the run's end is refused."""
    d = fake_run(tmp_path, "sort", "n16-d32-l1-h2", "kv", 0, 0.8)
    run = json.loads((d / "run.json").read_text())
    test = json.loads((d / "test.json").read_text())
    (d / "test.json").write_text(
        json.dumps(
            {**test, "last_test_acc": 0.75, "last_test_loss": 0.3, "last_step": run["steps"]}
        )
    )
    summary = collect([d / "run.json"], [d / "test.json"])
    row = summary.iloc[0]
    assert (row["test_acc"], row["last_test_acc"], row["last_test_loss"]) == (0.8, 0.75, 0.3)
    assert "last_step" not in summary.columns
    assert score_columns(summary.columns) >= {"test_acc", "last_test_acc", "last_test_loss"}
    (d / "test.json").write_text(
        json.dumps({**test, "last_test_acc": 0.75, "last_step": run["steps"] - 10})
    )
    with pytest.raises(ValueError, match=f"{d / 'test.json'}.*last weights of step"):
        collect([d / "run.json"], [d / "test.json"])


def test_test_json_without_metrics_is_refused(tree):
    _, runs, tests = tree
    tests[2].write_text(json.dumps({"test_size": 100, "step": 0, "select": "best"}))
    with pytest.raises(ValueError, match=str(tests[2])):
        collect(runs, tests)


@pytest.mark.parametrize(
    "name, damage",
    [
        ("run.json", lambda p: p.unlink()),
        ("run.json", lambda p: p.write_text('{"status": "done", "hparams": {')),
        ("test.json", lambda p: p.unlink()),
        ("test.json", lambda p: p.write_text("not json")),
        ("metrics.csv", lambda p: p.unlink()),
        ("metrics.csv", lambda p: p.write_text("step,epoch\n0,0\n")),
    ],
)
def test_missing_or_corrupt_file_is_named(tree, name, damage):
    _, runs, tests = tree
    bad = runs[5].parent / name
    damage(bad)
    with pytest.raises((FileNotFoundError, ValueError), match=str(bad)):
        collect(runs, tests)


def test_unfinished_run_is_refused(tree):
    _, runs, tests = tree
    record = json.loads(runs[3].read_text())
    runs[3].write_text(json.dumps({**record, "status": "running"}))
    with pytest.raises(ValueError, match=f"{runs[3]}.*not finished"):
        collect(runs, tests)


def test_diff_runs_reports_a_changed_hparam(tmp_path):
    a = fake_run(tmp_path, "sort", "n16-d32-l1-h2", "kv", 0, 0.8)
    b = fake_run(tmp_path / "other", "sort", "n16-d32-l1-h2", "kv", 0, 0.7, hp_extra={"lr": 3e-4})
    summary = collect([a / "run.json", b / "run.json"], [a / "test.json", b / "test.json"])
    diff = diff_runs(summary, str(a), str(b))
    assert diff.loc["lr", "kind"] == "param"
    assert (diff.loc["lr", "a"], diff.loc["lr", "b"]) == (1e-3, 3e-4)
    assert diff.loc["test_acc", "kind"] == "metric"
    assert "seed" not in diff.index and "cfg" not in diff.index
    assert diff_runs(summary, 0, 0).empty


# -- tables ----------------------------------------------------------------------------------
def test_paper_table_is_mean_over_seeds_then_across_configs(summary):
    table = paper_table(summary)
    for task in TASKS:
        for att in VARIANTS:
            mean, std = hand_cell(ACC, task, att)
            row = cell(table, task, att)
            assert row["mean"] == pytest.approx(mean, abs=1e-12)
            assert row["std"] == pytest.approx(std, abs=1e-12)
            assert (row["n_configs"], row["n_runs"]) == (len(CFGS), len(CFGS) * len(SEEDS))
    for att in VARIANTS:
        expect = sum(hand_cell(ACC, t, att)[0] for t in TASKS) / len(TASKS)
        assert cell(table, "mean", att)["mean"] == pytest.approx(expect)
    assert list(table["task"].drop_duplicates()) == ["reverse", "sort", "mean"]  # the paper's order


def test_unequal_seeds_weigh_configs_equally(shared_tree):
    _, runs, tests = shared_tree
    drop = KEYS.index(("reverse", "n16-d32-l1-h2", "kv", 1))
    table = paper_table(collect(runs[:drop] + runs[drop + 1 :], tests[:drop] + tests[drop + 1 :]))
    acc = {k: v for k, v in ACC.items() if k != KEYS[drop]}
    mean, std = hand_cell(acc, "reverse", "kv")
    pooled = np.mean([v for k, v in acc.items() if k[0] == "reverse" and k[2] == "kv"])
    assert not math.isclose(mean, pooled)  # the check below can tell the two apart
    assert cell(table, "reverse", "kv")["mean"] == pytest.approx(mean)
    assert cell(table, "reverse", "kv")["n_runs"] == 3


def test_paper_numbers_sit_beside_ours(summary):
    table = paper_table(summary)
    for task in TASKS:
        for att in VARIANTS:
            row = cell(table, task, att)
            assert (row["paper_mean"], row["paper_std"]) == paper.SYNTHETIC[task][att]
    # only reverse and sort were run: the paper's mean over those two, not its mean of the five
    expect = (paper.SYNTHETIC["reverse"]["kv"][0] + paper.SYNTHETIC["sort"]["kv"][0]) / 2
    assert cell(table, "mean", "kv")["paper_mean"] == pytest.approx(expect)


def test_paper_mean_row_of_all_five_tasks_is_the_printed_one():
    assert paper.synthetic_mean("kv_pos", paper.TASKS) == 0.870
    for att in paper.VARIANTS:  # the printed row agrees with its cells
        assert paper.synthetic_mean(att, paper.TASKS) == pytest.approx(
            np.mean([paper.SYNTHETIC[t][att][0] for t in paper.TASKS]), abs=6e-4
        )


def test_table_files_hold_the_expected_cells(summary, tmp_path):
    out = tmp_path / "tables"
    write_paper_table(summary, out / "synthetic.csv", out / "synthetic.md", out / "synthetic.tex")
    tidy = pd.read_csv(out / "synthetic.csv")
    assert list(tidy.columns) == [
        "task",
        "metric",
        "attention",
        "mean",
        "std",
        "n_configs",
        "n_runs",
        "paper_mean",
        "paper_std",
    ]
    mean, std = hand_cell(ACC, "sort", "kv_pos")
    ours = f"{round(mean, 4)} ({float(f'{std:.2g}')})"
    md = (out / "synthetic.md").read_text()
    header = md.splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "task",
        "qkv",
        "qkv paper",
        "kv_pos",
        "kv_pos paper",
        "kv",
        "kv paper",
    ]
    sort_row = next(line for line in md.splitlines() if line.startswith("| sort "))
    assert ours in sort_row and "0.9628 (0.038)" in sort_row
    assert sort_row.index(ours) < sort_row.index("0.9628 (0.038)")  # ours, then the paper's
    assert "| mean " in md
    tex = (out / "synthetic.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex and "kv\\_pos" in tex
    tex_row = next(line for line in tex.splitlines() if line.startswith("sort & "))
    assert ours in tex_row and "0.9708 (0.033)" in tex_row and tex_row.rstrip().endswith("\\\\")
    assert tex_row.count("&") == 6


def test_partial_summary_and_unknown_variant(summary, tmp_path):
    part = summary[(summary["task"] == "sort") & (summary["attention"] != "qkv")].copy()
    part.loc[part["attention"] == "kv", "attention"] = "kv_new"
    table = write_paper_table(part, tmp_path / "s.csv", tmp_path / "s.md", tmp_path / "s.tex")
    assert set(table["task"]) == {"sort", "mean"} and set(table["attention"]) == {
        "kv_pos",
        "kv_new",
    }
    assert cell(table, "sort", "kv_new")[["paper_mean", "paper_std"]].isna().all()
    lines = [line for line in (tmp_path / "s.md").read_text().splitlines() if line.startswith("|")]
    assert not any("qkv" in line or "reverse" in line for line in lines)
    row = next(line for line in lines if line.startswith("| sort "))
    assert row.rstrip().endswith("|  |")  # kv_new paper: empty


def test_every_registered_variant_has_an_order_and_a_colour():
    """The paper's variants in its column order, then those beyond it in theirs; each registered
    variant its own colour (not a spare one, which depends on which others are present)."""
    from kvt.attention_names import attention_names
    from kvt.report.figures import COLORS, variant_colors

    names = attention_names()
    assert paper.order_variants(reversed(names)) == [
        "qkv", "kv_pos", "kv", "qkv_pos", "kv_rel", "kv_shared"
    ]  # fmt: skip
    assert paper.order_variants(["zz", "kv_shared", "aa", "kv"]) == ["kv", "kv_shared", "aa", "zz"]
    assert set(names) <= set(COLORS) and len(set(COLORS.values())) == len(COLORS)
    assert variant_colors(["kv_rel"])["kv_rel"] == variant_colors(names)["kv_rel"]
    assert variant_colors(["new"])["new"] not in COLORS.values()


def test_by_config_and_params_tables(summary, tmp_path):
    table = write_by_config(summary, tmp_path / "bc.csv", tmp_path / "bc.md")
    row = table[
        (table["task"] == "sort") & (table["cfg"] == "n32-d64-l2-h4") & (table["attention"] == "kv")
    ]
    vals = [ACC["sort", "n32-d64-l2-h4", "kv", s] for s in SEEDS]
    assert row["mean"].item() == pytest.approx(np.mean(vals))
    assert row["std"].item() == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))  # ddof 1
    assert "sample std (ddof 1)" in (tmp_path / "bc.md").read_text()
    single = by_config_table(summary[summary["seed"] == SEEDS[0]])
    assert single["std"].isna().all()  # one seed: no spread to report
    assert row["n_seeds"].item() == 2 and row["seq_len"].item() == 32
    assert "±" in (tmp_path / "bc.md").read_text()
    params = write_params(summary, tmp_path / "p.csv", tmp_path / "p.md")
    assert list(params.columns) == ["cfg", "d_model", "depth", "heads", "qkv", "kv_pos", "kv"]
    assert (
        len(params) == len(CFGS) and (params["kv"] == 800).all() and (params["qkv"] == 1000).all()
    )
    assert "1,000" in (tmp_path / "p.md").read_text()
    odd = summary.copy()
    odd.loc[0, "n_params"] = 5
    with pytest.raises(ValueError, match="different parameter counts"):
        params_table(odd)


def test_family_is_the_only_one_unless_named(summary, tmp_path):
    assert paper_table(summary, "synthetic").equals(paper_table(summary))
    other = summary.copy()
    other["family"] = "vision"
    other["test_acc"] = 0.0
    mixed = pd.concat([summary, other], ignore_index=True)
    with pytest.raises(ValueError, match="name the family"):
        paper_table(mixed)
    assert paper_table(mixed, "synthetic").equals(paper_table(summary))  # the other rows left out
    assert by_config_table(mixed, "synthetic").equals(by_config_table(summary))
    with pytest.raises(ValueError, match="unknown task family 'nope'"):
        paper_table(summary, "nope")
    with pytest.raises(ValueError, match="no .*runs"):
        write_paper_table(
            other, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex", "synthetic"
        )


def test_write_tables_writes_all_three_tables(summary, tmp_path):
    names = ["t.csv", "t.md", "t.tex", "bc.csv", "bc.md", "p.csv", "p.md"]
    write_tables(summary, "synthetic", *(tmp_path / n for n in names))
    assert pd.read_csv(tmp_path / "t.csv").equals(paper_table(summary))
    bc = pd.read_csv(tmp_path / "bc.csv")
    assert np.allclose(bc["mean"], by_config_table(summary)["mean"])
    assert (pd.read_csv(tmp_path / "p.csv")["qkv"] == N_PARAMS["qkv"]).all()
    assert "\\end{tabular}" in (tmp_path / "t.tex").read_text()
    assert "±" in (tmp_path / "bc.md").read_text() and "1,000" in (tmp_path / "p.md").read_text()


# -- figures ---------------------------------------------------------------------------------
def test_seed_band_averages_on_the_common_range():
    grid, mean, lo, hi = seed_band([([0, 10], [0, 10]), ([0, 5, 20], [2, 7, np.nan])], points=6)
    assert grid[0] == 0 and grid[-1] == 5  # the second curve ends at 5 once its NaN is dropped
    assert np.allclose(mean, grid + 1) and np.allclose(lo, grid) and np.allclose(hi, grid + 2)


@pytest.mark.parametrize("kind", ["loss", "score"])
def test_figures_of_an_absent_task_are_refused(summary, tmp_path, kind):
    # the figures themselves are checked in test_scripts_write_their_outputs (they are slow)
    with pytest.raises(ValueError, match="swap"):
        write_figure(summary, "synthetic", "swap", kind, tmp_path / "x.png", tmp_path / "x.pdf")
    assert not (tmp_path / "x.png").exists()


def test_unknown_figure_kind_is_refused(summary, tmp_path):
    with pytest.raises(ValueError, match="'accuracy'"):
        write_figure(
            summary, "synthetic", "sort", "accuracy", tmp_path / "x.png", tmp_path / "x.pdf"
        )
    assert not (tmp_path / "x.png").exists()


# -- the Snakemake scripts -------------------------------------------------------------------
def run_script(name, monkeypatch, tmp_path, **fields):
    import sys

    monkeypatch.setattr(sys, "stderr", sys.stderr)  # the script redirects it to the log
    ns = {k: types.SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in fields.items()}
    snakemake = types.SimpleNamespace(log=[str(tmp_path / f"{name}.log")], **ns)
    runpy.run_path(str(REPO / "scripts" / f"{name}.py"), init_globals={"snakemake": snakemake})


def test_scripts_write_their_outputs(shared_tree, tmp_path, monkeypatch):
    _, runs, tests = shared_tree
    out = tmp_path / "out"
    run_script(
        "summarize",
        monkeypatch,
        tmp_path,
        input={"runs": [str(r) for r in runs], "tests": [str(t) for t in tests]},
        output={"csv": str(out / "summary.csv")},
    )
    names = {
        "csv": "synthetic.csv",
        "md": "synthetic.md",
        "tex": "synthetic.tex",
        "by_config_csv": "synthetic_by_config.csv",
        "by_config_md": "synthetic_by_config.md",
        "params_csv": "params_synthetic.csv",
        "params_md": "params_synthetic.md",
    }
    run_script(
        "tables",
        monkeypatch,
        tmp_path,
        input={"summary": str(out / "summary.csv")},
        params={"group": "synthetic"},
        output={k: str(out / v) for k, v in names.items()},
    )
    figs = {}
    for kind, stem in (("loss", "loss_sort"), ("score", "accuracy_sort")):
        files = {"png": f"{stem}.png", "pdf": f"{stem}.pdf"}
        run_script(
            "figures",
            monkeypatch,
            tmp_path,
            input={"summary": str(out / "summary.csv")},
            params={"group": "synthetic", "task": "sort", "kind": kind},
            output={k: str(out / v) for k, v in files.items()},
        )
        figs.update({f"{kind}_{k}": v for k, v in files.items()})
    for name in ["summary.csv", *names.values()]:
        assert (out / name).stat().st_size > 0, name
    summary = read_summary(out / "summary.csv")
    assert pd.read_csv(out / "synthetic.csv").equals(paper_table(summary).reset_index(drop=True))
    assert len(pd.read_csv(out / "synthetic_by_config.csv")) == len(by_config_table(summary))
    assert (pd.read_csv(out / "params_synthetic.csv")["kv"] == N_PARAMS["kv"]).all()
    assert "\\begin{tabular}" in (out / "synthetic.tex").read_text()
    for name in figs.values():
        head = (out / name).read_bytes()[:8]
        assert (out / name).stat().st_size > 2000, name
        assert head.startswith(b"\x89PNG" if name.endswith(".png") else b"%PDF"), name
    assert len(pd.read_csv(out / "summary.csv")) == len(KEYS)


def test_score_columns_are_derived_from_the_summary():
    """val_<m> is a score where final_val_<m> exists; settings named val_*/test_* stay settings."""
    cols = [
        "val_size",
        "val_per_epoch",
        "val_every",
        "test_size",
        "val_loss",
        "val_acc",
        "final_val_loss",
        "final_val_acc",
        "test_acc",
        "test_bleu",
        "last_test_bleu",
        "lr",
    ]
    assert score_columns(cols) == {
        "val_loss",
        "val_acc",
        "final_val_loss",
        "final_val_acc",
        "test_acc",
        "test_bleu",
        "last_test_bleu",
    }


def test_compare_two_runs_and_two_result_folders(tmp_path, capsys):
    from kvt.report.compare import compare_results, compare_runs, main
    from kvt.report.summary import write_summary

    folders = {}
    for side, acc, extra in (("a", 0.8, None), ("b", 0.75, {"lr": 3e-4})):
        root = tmp_path / side
        dirs = [
            fake_run(root, "sort", "n16-d32-l1-h2", "kv", 0, acc, hp_extra=extra),
            fake_run(root, "sort", "n16-d32-l1-h2", "qkv", 0, 0.9),
        ]
        if side == "b":
            dirs.append(fake_run(root, "copy", "n16-d32-l1-h2", "qkv", 0, 1.0))
        write_summary(
            collect([d / "run.json" for d in dirs], [d / "test.json" for d in dirs]),
            root / "summary.csv",
        )
        folders[side] = dirs
    runs = compare_runs(folders["a"][0], folders["b"][0])
    assert runs.loc["lr", "kind"] == "param" and runs.loc["test_acc", "kind"] == "metric"
    lonely, diffs = compare_results(tmp_path / "a", tmp_path / "b")
    assert lonely[["task", "attention", "side"]].values.tolist() == [["copy", "qkv", "only b"]]
    acc = diffs.set_index("column").loc["test_acc"]
    assert acc["kind"] == "metric" and acc["runs_differing"] == 1
    assert acc["max_abs_diff"] == pytest.approx(0.05)
    assert diffs.set_index("column").loc["lr", "runs_differing"] == 1
    main([str(tmp_path / "a"), str(tmp_path / "a")])
    assert "matched runs: no differences" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="two run folders"):
        main([str(tmp_path / "a"), str(folders["b"][0])])
