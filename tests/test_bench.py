"""kvt.bench: the interleaved timer, the saved-for-backward meter, and the layer benchmark's
candidates (all computing one function; the literal kv_pos holding its 5-D tensor)."""

import pytest
import torch
from kvt.attention_names import added_to, attention_names
from kvt.bench.layer import Shape, candidates, literal_kv_pos, ratios, run_shape
from kvt.bench.timing import interleaved, saved_bytes

CPU = torch.device("cpu")
TINY = Shape("tiny", batch=2, heads=2, n=6, d_head=4, pos_dim=6)


def test_interleaved_calls_every_candidate_in_rotating_order():
    calls = []
    out = interleaved(
        {
            "a": lambda: calls.append("a"),
            "b": lambda: calls.append("b"),
            "c": lambda: calls.append("c"),
        },
        CPU,
        repeats=3,
        warmup=1,
    )
    assert set(out) == {"a", "b", "c"} and all(t >= 0 for t in out.values())
    assert calls == list("abcbcacababc")  # 4 rounds, each starting one later


def test_saved_bytes_counts_what_backward_keeps():
    x = torch.randn(64, 64, requires_grad=True)
    assert saved_bytes(lambda: (x * 2).sum()) == 0  # a scalar factor keeps nothing
    assert saved_bytes(lambda: (x @ x).sum()) == 64 * 64 * 4  # both operands: the same storage
    assert saved_bytes(lambda: x.exp().sum()) == 64 * 64 * 4


def test_candidates_compute_the_same_attention():
    for shape in (
        TINY,
        Shape("tiny causal", 2, 2, 6, 4, 6, causal=True),
        Shape("tiny cross", 2, 2, 6, 4, 6, context=5),
    ):
        cands = candidates(shape, CPU)
        x = torch.randn(shape.batch, shape.n, shape.d_model)
        ctx = torch.randn(shape.batch, shape.context, shape.d_model) if shape.context else None
        from kvt.attention import make_mask

        mask = make_mask(shape.n, causal=True) if shape.causal else None
        kv_pos = [name for name, (variant, _, _) in cands.items() if variant == "kv_pos"]
        assert len(kv_pos) == 5
        ref_module = cands["kv_pos sdpa"][1]
        for name in kv_pos:  # copy one set of weights into every kv_pos candidate
            cands[name][1].load_state_dict(ref_module.state_dict())
        ref = literal_kv_pos(ref_module, x, mask, ctx)
        for name in kv_pos:
            torch.testing.assert_close(
                cands[name][2](x, mask, ctx),
                ref,
                rtol=1e-4,
                atol=1e-5,
                msg=lambda m, n=name: f"{shape.name} {n}: {m}",
            )
        # every variant: its SDPA and manual paths compute one function
        for variant in attention_names():
            sdpa, manual = cands[f"{variant} sdpa"], cands[f"{variant} manual"]
            manual[1].load_state_dict(sdpa[1].state_dict())
            torch.testing.assert_close(
                manual[2](x, mask, ctx), sdpa[2](x, mask, ctx), rtol=1e-4, atol=1e-5
            )


def test_run_shape_reports_every_candidate_and_the_ratios():
    rows = run_shape(TINY, CPU, repeats=1, warmup=0)
    names = {r["candidate"] for r in rows}
    assert {
        "qkv sdpa",
        "kv sdpa",
        "kv_pos sdpa",
        "kv_pos literal",
        "qkv torch.nn.MultiheadAttention",
    } <= names
    saved = {r["candidate"]: r["saved_mib"] for r in rows}
    assert saved["kv_pos literal"] > saved["kv_pos sdpa"]  # the batch x heads x n x n x p tensor
    table = ratios(rows)
    assert {r["ratio"] for r in table} >= {
        "kv_pos / kv (sdpa)",
        "qkv sdpa / MultiheadAttention",
        "qkv_pos / qkv (sdpa)",
        "kv_rel / kv (sdpa)",
        "kv_shared / kv (sdpa)",
    }
    assert {f"{v} sdpa" for v in attention_names()} <= names
    assert all(r["value"] > 0 for r in table)


def test_overhead_reads_job_benchmarks_against_training_time(tmp_path):
    import json

    from kvt.bench.overhead import job_times, main, summarize

    results = tmp_path / "results"
    for kind, run, wall in (
        ("train", "copy/c/kv/seed0", 5.0),
        ("train", "copy/c/qkv/seed0", 3.0),
        ("eval", "copy/c/kv/seed0", 2.0),
    ):
        tsv = results / "benchmarks" / "synthetic" / kind / f"{run}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\tmax_rss\n{wall}\t0:00:05\t100\n")
    for run, inside in (("copy/c/kv/seed0", 1.0), ("copy/c/qkv/seed0", 0.5)):
        (results / "synthetic" / run).mkdir(parents=True)
        (results / "synthetic" / run / "run.json").write_text(json.dumps({"train_seconds": inside}))
    rows = job_times(results)
    assert [(r["kind"], r["overhead_s"]) for r in rows] == [
        ("eval", 2.0),
        ("train", 4.0),
        ("train", 2.5),
    ]
    train, ev = summarize(rows)
    assert train["median_overhead_s"] == 3.25 and ev["median_overhead_s"] == 2.0
    main([str(results)])
    assert (results / "bench" / "overhead_summary.csv").read_text().startswith("kind,jobs")


def test_overhead_of_a_joint_seeds_job_is_counted_per_run(tmp_path):
    import json
    from pathlib import Path

    from kvt.bench.overhead import job_times
    from kvt.families.base import JOINT_NAME

    results = tmp_path / "results"
    tsv = results / "benchmarks" / "synthetic" / "train" / "copy" / "c" / "kv" / f"{JOINT_NAME}.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("s\th:m:s\tmax_rss\n9.0\t0:00:09\t100\n")
    for seed, inside in ((0, 1.0), (1, 2.0), (2, 3.0)):
        run = results / "synthetic" / "copy" / "c" / "kv" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"train_seconds": inside}))
    eval_tsv = Path(str(tsv).replace("/train/", "/eval/"))
    eval_tsv.parent.mkdir(parents=True)
    eval_tsv.write_text("s\th:m:s\tmax_rss\n4.5\t0:00:04\t100\n")
    ev, train = job_times(results)
    assert (train["runs"], train["train_s"], train["overhead_s"]) == (3, 6.0, 1.0)
    assert (ev["kind"], ev["runs"], ev["overhead_s"]) == ("eval", 3, 1.5)


@pytest.mark.slow
def test_step_benchmark_runs_every_family_on_random_batches():
    from pathlib import Path

    from kvt.bench.step import Case, ratios, run_case
    from kvt.config import load_config

    config = load_config({"preset": "smoke"}, Path(__file__).resolve().parents[1])
    rows = []
    for case in (
        Case("synthetic", "sort"),
        Case("vision", "cifar10"),
        Case("anomaly", "cifar100"),
        Case("charlm", "shakespeare"),
        Case("translation", "multi30k_en_de"),
    ):
        part = run_case(config, case, CPU, repeats=1, warmup=0)
        assert [r["variant"] for r in part] == attention_names()
        assert all(r["ms"] > 0 and 0 < r["share_of_peak"] and r["params"] > 0 for r in part)
        assert part[1]["params"] < part[0]["params"]  # kv drops W_Q
        rows += part
    table = ratios(rows)
    # per case: each variant but qkv over its baseline, and qkv's share of the peak
    assert len(table) == len(attention_names()) * 5 and all(r["value"] > 0 for r in table)
    assert {r["ratio"] for r in table} >= {"kv_rel / kv step", "qkv_pos / qkv step"}


@pytest.mark.slow
def test_profile_groups_a_steps_operators(capsys):
    from kvt.bench.profile import group_of, run

    assert [
        group_of(n)
        for n in (
            "aten::addmm",
            "aten::bernoulli_",
            "aten::native_layer_norm",
            "aten::_foreach_norm",
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_foreach_addcdiv_",
            "aten::gelu",
        )
    ] == ["matmul", "dropout", "layer norm", "clip", "attention", "optimizer", "other"]
    groups = dict(run("synthetic", "n64-d64-l2-h2", "kv", CPU, steps=1, top=3))
    assert groups["matmul"] > 0 and groups["attention"] > 0 and groups["dropout"] > 0
    assert "top operators by self time" in capsys.readouterr().out


def test_each_variant_is_benchmarked_against_what_it_adds_to():
    assert [added_to(v) for v in ("qkv", "kv", "kv_pos", "qkv_pos", "kv_rel", "kv_shared")] == [
        None,
        "qkv",
        "kv",
        "qkv",
        "kv",
        "kv",
    ]
    with pytest.raises(ValueError, match="unknown attention 'qk'"):
        added_to("qk")
