"""kvt.bench.gpu (make gpu-check): a short training run per family and variant, its table, and the
paper preset's GPU-hours from it; refused cleanly without CUDA or with an unknown precision."""

import csv
from pathlib import Path

import pytest
import torch
from kvt.bench import gpu
from kvt.bench.step import VARIANTS, Case

ROOT = Path(__file__).resolve().parents[1]
# One quick case per family (under 0.2 s a step on 2 threads at its paper configuration).
SMALL = (
    Case("synthetic", "sort", "n64-d64-l2-h2"),
    Case("vision", "cifar10"),
    Case("anomaly", "cifar100"),
    Case("translation", "multi30k_en_de"),
)
FAMILIES = ["synthetic", "vision", "anomaly", "translation"]


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def run(tmp_path, monkeypatch):
    """main() on the CPU over SMALL, from the repository root; returns the output folder."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(gpu, "CASES", SMALL)
    switches = (torch.backends.cuda.matmul, torch.backends.cudnn)  # main() sets them: restored
    before = [s.allow_tf32 for s in switches]

    def call(*args):
        gpu.main(
            [
                "--device",
                "cpu",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--out",
                str(tmp_path / "bench" / "gpu.csv"),
                *args,
            ]
        )
        return tmp_path / "bench"

    yield call
    for s, value in zip(switches, before):
        s.allow_tf32 = value


@pytest.mark.slow
def test_cpu_run_measures_every_family_and_variant_and_estimates_hours(run, capsys):
    out = run()
    rows = read(out / "gpu.csv")
    assert [(r["family"], r["variant"]) for r in rows] == [
        (f, v) for f in FAMILIES for v in VARIANTS
    ]
    for r in rows:
        assert float(r["samples_per_s"]) > 0 and float(r["tokens_per_s"]) > 0
        assert float(r["gflop_per_s"]) > 0
        assert r["precision"] == "fp32" and r["peak_mib"] == ""  # no allocator stats on a CPU
        assert r["gpu"].endswith("threads)") and r["date"]
    # tokens per sample: sequence length, a ViT's 16 patches + class token, a translation pair
    tokens = {r["family"]: float(r["tokens_per_s"]) / float(r["samples_per_s"]) for r in rows}
    assert tokens["synthetic"] == pytest.approx(64, rel=0.01)
    assert tokens["vision"] == pytest.approx(17, rel=0.01)
    assert tokens["translation"] == pytest.approx(31, rel=0.01)

    hours = read(out / "gpu_hours.csv")
    assert [r["family"] for r in hours] == [*FAMILIES, "total"]
    assert all(float(r["gpu_hours"]) > 0 and int(r["runs"]) > 0 for r in hours)
    assert float(hours[-1]["gpu_hours"]) == pytest.approx(
        sum(float(r["gpu_hours"]) for r in hours[:-1]), abs=0.05
    )
    # the paper preset's hours from the rates of the variants it runs, not of every one measured
    import statistics

    from kvt.config import load_config

    paper = load_config({"preset": "paper"}, ROOT)["attentions"]
    assert set(paper) < set(VARIANTS)
    for h in hours[:-1]:
        rates = [
            float(r["gflop_per_s"])
            for r in rows
            if r["family"] == h["family"] and r["variant"] in paper
        ]
        assert float(h["gflop_per_s"]) == pytest.approx(statistics.harmonic_mean(rates), rel=0.02)
    for name in ("gpu.md", "gpu_hours.md"):
        assert "| family |" in (out / name).read_text()
    printed = capsys.readouterr()
    assert "training matmuls only" in printed.out.lower() and "gpu_slots" in printed.out
    assert printed.err.count("samples/s") == len(rows)  # a progress line per case and variant


@pytest.mark.slow
def test_cases_and_precisions_select_what_runs(run):
    out = run("--cases", "vision", "--precision", "fp32", "bf16")
    rows = read(out / "gpu.csv")
    assert {(r["family"], r["precision"]) for r in rows} == {("vision", "fp32"), ("vision", "bf16")}
    hours = read(out / "gpu_hours.csv")
    assert [(r["family"], r["precision"]) for r in hours] == [
        ("vision", "fp32"),
        ("total", "fp32"),
        ("vision", "bf16"),
        ("total", "bf16"),
    ]


def test_cuda_without_a_cuda_device_fails_with_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as err:
        gpu.main(["--device", "cuda"])
    message = str(err.value.code)
    assert "no CUDA device" in message and "\n" not in message


def test_unknown_precision_or_family_is_refused(capsys):
    for args in (["--precision", "fp16"], ["--cases", "audio"], ["--steps", "0"]):
        with pytest.raises(SystemExit) as err:
            gpu.main(["--device", "cpu", *args])
        assert err.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
