"""kvt.report.attention_terms: hand-written attention.json files -> the diagonal-mass table (mean and
sample std over seeds, uniform baseline, variants as columns in the paper's order), the kv_pos
table, both figures, and the kv_pos outputs that say so where no run has the positional term."""

import csv
import json

import pytest
from kvt.families.base import ATTENTION_FILE
from kvt.report.analysis_files import ATTENTION_ANALYSIS
from kvt.report.attention_terms import (
    diagonal_figure,
    diagonal_table,
    read_probes,
    terms_figure,
    write_analysis,
)


def layer(name, mass, uniform=0.25):
    return {
        "name": name,
        "calls": 2,
        "n_max": 4,
        "heads": 2,
        "rows": 64,
        "diagonal_mass": mass,
        "diagonal_mass_per_head": [mass, mass],
        "uniform_diagonal": uniform,
    }


def term(name, alpha, n=4):
    return {
        "name": name,
        "variant": "kv_pos",
        "plain": "kv",
        "m": n,
        "n": n,
        "maps": len(alpha),
        "alpha": alpha,
        "max_abs_bias": 1.5,
        "max_abs_remainder": 2e-7,
        "c": [[0.1 * j for j in range(n)] for _ in alpha],
        "check_calls": 2,
        "max_abs_diff": 3e-7,
        "max_abs_out": 2.0,
        "rel_diff": 1.5e-7,
    }


def probe_file(root, attention, seed, masses, alphas=None, family="synthetic", task="reverse"):
    """A run folder's attention.json: one self-attention layer per mass, 'blocks.<i>.attn'."""
    run = {"family": family, "task": task, "cfg": "n8-d16-l2-h2", "attention": attention}
    path = root / family / task / run["cfg"] / attention / f"seed{seed}" / ATTENTION_FILE
    path.parent.mkdir(parents=True)
    names = [f"blocks.{i}.attn" for i in range(len(masses))]
    probe = {
        "run": {**run, "seed": seed},
        "probe": {"items": 64, "chunks": 1, "max_batches": 4, "max_items": 512},
        "layers": [layer(n, m) for n, m in zip(names, masses)],
        "positional": [term(n, a) for n, a in zip(names, alphas)] if alphas else [],
    }
    path.write_text(json.dumps(probe))
    return path


@pytest.fixture
def probes(tmp_path):
    return [
        probe_file(tmp_path, "kv", 0, [0.8, 0.6]),
        probe_file(tmp_path, "kv", 1, [0.6, 0.4]),
        probe_file(tmp_path, "qkv", 0, [0.3, 0.1]),
        probe_file(tmp_path, "kv_pos", 0, [0.5, 0.5], alphas=[[1.5], [0.5]]),
        probe_file(tmp_path, "kv_pos", 1, [0.7, 0.3], alphas=[[2.0], [1.0]]),
    ]


def test_the_diagonal_table_has_mean_std_seeds_and_baseline_per_layer_and_variant(probes):
    table = diagonal_table(read_probes(probes)[0])
    assert list(table["attention"][:3]) == ["qkv", "kv_pos", "kv"]  # the paper's order
    assert list(table["layer"]) == ["blocks.0.attn"] * 3 + ["blocks.1.attn"] * 3
    kv1 = table[(table["attention"] == "kv") & (table["position"] == 1)].iloc[0]
    assert kv1["diagonal_mass"] == pytest.approx(0.5)
    assert kv1["diagonal_mass_std"] == pytest.approx(0.1414213562, rel=1e-6)  # ddof 1
    assert kv1["n_seeds"] == 2 and kv1["uniform_diagonal"] == pytest.approx(0.25)
    qkv0 = table[(table["attention"] == "qkv") & (table["position"] == 0)].iloc[0]
    assert qkv0["n_seeds"] == 1 and qkv0["diagonal_mass"] == pytest.approx(0.3)


def test_write_analysis_writes_every_output(tmp_path, probes):
    outputs = {k: tmp_path / "out" / v for k, v in ATTENTION_ANALYSIS.items()}
    write_analysis(probes, outputs, attentions=["qkv", "kv", "kv_pos"])
    md = outputs["diagonal_md"].read_text()
    assert "## synthetic / reverse" in md
    assert "| configuration | layer | qkv | kv_pos | kv | uniform |" in md
    assert "| n8-d16-l2-h2 | blocks.1.attn | 0.1 | 0.4 ± 0.14 | 0.5 ± 0.14 | 0.25 |" in md
    with open(outputs["terms_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["seed"], r["layer"], r["alpha"]) for r in rows] == [
        ("0", "blocks.0.attn", "1.5"),
        ("0", "blocks.1.attn", "0.5"),
        ("1", "blocks.0.attn", "2"),
        ("1", "blocks.1.attn", "1"),
    ]
    assert float(rows[0]["max_abs_diff"]) == pytest.approx(3e-7)
    assert "| n8-d16-l2-h2 | kv_pos | 0 | blocks.0.attn | 1.5 | 1.5 | 2.0e-07 |" in (
        outputs["terms_md"].read_text()
    )
    for key in ("diagonal_png", "terms_png", "diagonal_pdf", "terms_pdf"):
        assert outputs[key].stat().st_size > 5_000


def test_without_a_positional_run_the_kv_pos_outputs_say_so(tmp_path):
    paths = [probe_file(tmp_path, "kv", 0, [0.9]), probe_file(tmp_path, "qkv", 0, [0.2])]
    outputs = {k: tmp_path / "out" / v for k, v in ATTENTION_ANALYSIS.items()}
    write_analysis(paths, outputs, attentions=["kv", "qkv"])
    assert (
        "No run has the positional term (kv_pos or qkv_pos): the runs' variants are qkv, kv."
        in (outputs["terms_md"].read_text())
    )
    assert outputs["terms_csv"].read_text().startswith("family,task,cfg,attention,seed,")
    assert outputs["terms_png"].stat().st_size > 3_000
    assert (
        "| n8-d16-l2-h2 | blocks.0.attn | 0.2 | 0.9 | 0.25 |" in outputs["diagonal_md"].read_text()
    )


def test_figures_have_a_panel_per_configuration(tmp_path, probes):
    probes.append(probe_file(tmp_path, "kv", 0, [0.9], family="human_numbers", task="numbers"))
    layers, terms = read_probes(probes)
    fig = diagonal_figure(layers)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == [
        "synthetic / reverse / n8-d16-l2-h2",
        "human_numbers / numbers / n8-d16-l2-h2",
    ]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1"]
    assert len(terms_figure(terms).axes) == 2


def test_a_file_that_is_not_a_probes_is_named(tmp_path):
    bad = tmp_path / ATTENTION_FILE
    bad.write_text("{}")
    with pytest.raises(ValueError, match=f"{bad}: not an attention probe's file"):
        read_probes([bad])
