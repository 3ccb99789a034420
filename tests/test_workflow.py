"""The Snakemake DAG: job counts of the paper grid, restrictions, and config errors that stop
the run at once with a message naming the problem (dry runs only: nothing is trained here)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs snakemake (a dry run)

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def dry_run(*config: str, tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [
        *SNAKEMAKE,
        "-n",
        "--quiet",
        "rules",
        "--cores",
        "1",
        "--config",
        f"results={tmp_path}/results",
        *config,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def job_counts(out: str) -> dict[str, int]:
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out, flags=re.M))
    return {k: int(v) for k, v in counts.items()}


def test_paper_grid_schedules_every_family(tmp_path):
    res = dry_run(tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout + res.stderr)
    assert counts["synthetic_train"] == 5 * 16 * 3 * 3 == 720
    assert counts["synthetic_eval"] == 720
    # MNIST, Fashion-MNIST: d {256, 512} x heads {2, 4}; CIFAR-10/100: depth {2, 4} x heads {2, 4}
    assert counts["vision_train"] == counts["vision_eval"] == 4 * 4 * 3 * 3 == 144
    assert counts["vision_data"] == 4 and counts["vision_attention"] == 4
    assert counts["anomaly_features"] == 1 and counts["anomaly_train"] == 3 * 3
    # NLP: the char-LM's one configuration; translation en -> de and de -> en, d {64, 128, 256} x
    # heads {1, 4}, both from one data rule and one joint tokenizer
    assert counts["charlm_train"] == counts["charlm_eval"] == 1 * 3 * 3
    assert counts["translation_train"] == counts["translation_eval"] == 2 * 6 * 3 * 3 == 108
    assert counts["charlm_data"] == 1 and counts["translation_data"] == 1
    assert counts["translation_tokenizer"] == 1
    assert counts["translation_bleu_figure"] == counts["translation_cross_attention"] == 2
    # Human Numbers: lr {1e-3, 1e-4} x seq_len {16, 32, 64, 128}, the reference's 5 seeds
    assert counts["human_numbers_train"] == counts["human_numbers_eval"] == 8 * 3 * 5 == 120
    assert counts["loss_figure"] == counts["score_figure"] == 5 + 4 + 1 + 3 + 1
    assert counts["summary"] == 1 and counts["tables"] == 5
    assert counts["attention_analysis"] == 1
    # what CI checks (python -m kvt.expect) is what the workflow schedules
    from kvt.config import load_config
    from kvt.expect import job_counts as expected_counts

    expected = expected_counts(load_config({}, ROOT))
    assert {rule: counts[rule] for rule in expected} == expected


def test_the_attention_analysis_reads_every_runs_probe(tmp_path):
    """Its one job needs every run's eval job (attention.json), not the summary."""
    target = f"{tmp_path}/results/tables/diagonal.md"
    res = dry_run(
        "families=[synthetic]",
        "synthetic={tasks: [sort, copy]}",
        "attentions=[kv,kv_pos]",
        "seeds=[0,1]",
        "--",
        target,
        tmp_path=tmp_path,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout + res.stderr)
    assert counts["attention_analysis"] == 1 and "summary" not in counts
    assert counts["synthetic_eval"] == 2 * 16 * 2 * 2


def test_joint_seeds_serves_every_seed_of_a_run_in_one_job(tmp_path):
    res = dry_run("synthetic={joint_seeds: true}", "families=[synthetic]", tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout + res.stderr)
    assert counts["synthetic_train"] == counts["synthetic_eval"] == 5 * 16 * 3 == 240


def test_joint_seeds_and_groups_serve_every_family(tmp_path):
    """joint_seeds and group are settings of every family (the generic train and eval rules)."""
    res = dry_run(
        "families=[vision]",
        "vision={tasks: [digits], joint_seeds: true, group: true}",
        tmp_path=tmp_path,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout + res.stderr)
    assert counts["vision_train"] == counts["vision_eval"] == 1 * 3  # one configuration, 3 variants


def test_restricting_task_variant_and_seeds(tmp_path):
    res = dry_run(
        "attentions=[kv]", "seeds=[1]", "synthetic={tasks: [sort], epochs: 1}", tmp_path=tmp_path
    )
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout + res.stderr)
    assert counts["synthetic_train"] == 16
    # sort; 4 datasets; cifar100; 3 NLP tasks; numbers (the paper preset gives Human Numbers its
    # own seeds, which the top-level seeds do not replace)
    assert counts["loss_figure"] == 1 + 4 + 1 + 3 + 1


def test_families_pick_what_runs(tmp_path):
    """families: [vision] schedules no synthetic or set-anomaly job, and the summary gathers
    only the vision runs."""
    res = dry_run("families=[vision]", "vision={tasks: [digits]}", tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    counts = job_counts(res.stdout + res.stderr)
    assert "synthetic_train" not in counts and "anomaly_train" not in counts
    assert counts["vision_train"] == 3 * 3 and counts["vision_data"] == 1
    assert counts["tables"] == 1 and counts["loss_figure"] == 1


def test_presets_change_the_grid(tmp_path):
    # cpu: synthetic 5 seeds (its own), the others 2; translation en -> de only. smoke: both
    # translation directions
    # extended over cpu: 6 variants, 3 seeds (synthetic's own 5 reset), each task's first
    # configuration (synthetic's first of 2)
    for preset, runs in (
        ("cpu", (5 * 2 * 3 * 5, 5 * 3 * 2, 3 * 2, 3 * 2, 3 * 2)),
        ("smoke", (5 * 3, 5 * 3, 3, 3, 2 * 3)),
        ("[cpu,extended]", (5 * 1 * 6 * 3, 5 * 6 * 3, 6 * 3, 6 * 3, 6 * 3)),
    ):
        res = dry_run(f"preset={preset}", tmp_path=tmp_path)
        assert res.returncode == 0, res.stderr + res.stdout
        counts = job_counts(res.stdout + res.stderr)
        names = (
            "synthetic_train",
            "vision_train",
            "anomaly_train",
            "charlm_train",
            "translation_train",
        )
        assert tuple(counts[n] for n in names) == runs, preset


@pytest.mark.parametrize(
    "override, named",
    [
        ("preset=gpu", "unknown preset 'gpu'"),
        ("synthetic={epoch: 1}", "'epoch' was unexpected"),
        ("attentions=[qk]", "attentions[0]: 'qk' is not one of"),
        ("synthetic={tasks: [sorting]}", "synthetic.tasks[0]: 'sorting'"),
        ("synthetic={lr: fast}", "synthetic.lr: 'fast' is not of type 'number'"),
        (
            "synthetic={grid: {seq_len: [64], d_model: [64], depth: [2], heads: [3]}}",
            "not divisible by heads=3",
        ),
        ("device=tpu", "device: 'tpu' is not one of"),
        ("precision=fp16", "precision: 'fp16' is not one of"),
        ("gpu_slots=0", "gpu_slots: 0 is less than the minimum"),
        (
            "synthetic={joint_seeds: maybe}",
            "synthetic.joint_seeds: 'maybe' is not of type 'boolean'",
        ),
        ("families=[audio]", "families[0]: 'audio' is not one of"),
        ("vision={cifar10: {lr: -1}}", "vision.cifar10.lr: -1"),
        ("data={download: maybe}", "data.download: 'maybe' is not of type 'boolean'"),
        ("synthetic={lr: nan}", "synthetic.lr: nan is not a finite number"),
        ("seeds=[4294967296]", "seeds[0]: 4294967296 is greater than the maximum"),
        ("anomaly={dropout: 1}", "anomaly.dropout: 1.0 is greater than or equal to the maximum"),
    ],
)
def test_bad_config_stops_with_a_message_naming_it(tmp_path, override, named):
    res = dry_run(override, tmp_path=tmp_path)
    assert res.returncode != 0
    assert named in res.stderr + res.stdout


def test_a_section_not_in_families_is_checked_too(tmp_path):
    """Its rules can be reached by naming an output path: an invalid section stops the run."""
    res = dry_run(
        "families=[synthetic]", "vision={cifar10: {grid: {d_model: [30]}}}", tmp_path=tmp_path
    )
    assert res.returncode != 0
    assert "vision.cifar10.grid: d_model=30 is not divisible by heads=4" in res.stderr + res.stdout
