"""The cost table (kvt.report.cost): per family, task and variant, parameters and FLOPs (means over
configurations), step time (median over runs) and their ratios to qkv."""

import pandas as pd
import pytest
from kvt.report.cost import write_cost


def run(task, cfg, attention, seed, n_params, flops, train_seconds, steps=100, device="cpu"):
    return {
        "family": "synthetic",
        "task": task,
        "cfg": cfg,
        "attention": attention,
        "seed": seed,
        "n_params": n_params,
        "flops": flops,
        "train_seconds": train_seconds,
        "steps": steps,
        "device": device,
    }


def test_cost_per_variant_with_ratios_to_qkv(tmp_path):
    rows = [
        run("sort", "a", "qkv", 0, 1000, 4000, 1.0),
        run("sort", "a", "qkv", 1, 1000, 4000, 3.0),
        run("sort", "b", "qkv", 0, 3000, 8000, 2.0),
        run("sort", "a", "kv", 0, 800, 3000, 1.0),
        run("sort", "a", "kv", 1, 800, 3000, 1.2),
        run("sort", "b", "kv", 0, 2000, 6000, 1.4, device="cuda"),
        run("copy", "a", "kv", 0, 10, 20, 0.5),
    ]  # a task without qkv: no ratios
    table = write_cost(pd.DataFrame(rows), tmp_path / "c.csv", tmp_path / "c.md")
    qkv = table[(table.task == "sort") & (table.variant == "qkv")].iloc[0]
    assert (qkv.configurations, qkv.runs) == (2, 3)
    assert qkv.n_params == pytest.approx(5000 / 3) and qkv.flops == pytest.approx(16000 / 3)
    assert qkv.step_ms == pytest.approx(20.0)  # median of 10, 30, 20 ms
    kv = table[(table.task == "sort") & (table.variant == "kv")].iloc[0]
    assert kv.step_ms == pytest.approx(12.0) and kv.step_vs_qkv == pytest.approx(0.6)
    assert kv.params_vs_qkv == pytest.approx(3600 / 5000) and kv.flops_vs_qkv == pytest.approx(
        12000 / 16000
    )
    assert kv.device == "cpu, cuda"
    copy = table[table.task == "copy"].iloc[0]
    assert pd.isna(copy.step_vs_qkv)
    assert list(table.task) == ["sort", "sort", "copy"]  # the paper's task order, qkv first
    md = (tmp_path / "c.md").read_text()
    assert "| synthetic | sort | kv | 1,200 |" in md and "0.600" in md
