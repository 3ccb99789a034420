"""Target paths' wildcards (kvt.target_checks: what the rules' constraints cannot say), checked
while Snakemake builds the DAG, and the figure jobs' check that each model.pt is its run's."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_hparams, vision_inputs
from kvt.config import ConfigError
from kvt.target_checks import (
    SEED_MAX,
    check_run,
    check_score,
    check_seed,
    check_summary_target,
    family_of_task,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"sort": {"n8-d16": {}}, "copy": {"n16-d16": {}}}


# -- the checks --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "7", str(SEED_MAX)])
def test_seeds_in_numpys_range_pass(value):
    assert check_seed(value, "r/seed" + value) == int(value)


def test_seed_above_numpys_range_is_refused_naming_wildcard_and_path():
    assert SEED_MAX == 2**32 - 1
    with pytest.raises(ConfigError, match=r"wildcard seed=4294967296 in r/x/seed4294967296: above"):
        check_seed(str(2**32), "r/x/seed4294967296")


def test_seed_with_a_leading_zero_is_refused():
    """seed07 would train seed 7's run into a second folder."""
    with pytest.raises(ConfigError, match=r"seed='07' in r/seed07: .*\(seed7\)"):
        check_seed("07", "r/seed07")


def test_configuration_of_another_task_is_refused():
    """The rule's constraint admits every task's configurations; the path's task has its own."""
    check_run("synthetic", CONFIGS, {"task": "sort", "cfg": "n8-d16", "seed": "1"}, "r/a")
    with pytest.raises(ConfigError, match=r"wildcard cfg='n16-d16' in r/b: .*task 'sort' .*n8-d16"):
        check_run("synthetic", CONFIGS, {"task": "sort", "cfg": "n16-d16", "seed": "1"}, "r/b")


def test_run_checks_its_seed_and_allows_the_joint_form():
    check_run("synthetic", CONFIGS, {"task": "copy", "cfg": "n16-d16"}, "r/seeds")  # joint_seeds
    with pytest.raises(ConfigError, match="wildcard seed="):
        check_run("synthetic", CONFIGS, {"task": "copy", "cfg": "n16-d16", "seed": "9" * 11}, "r")


def test_summary_targets_need_a_listed_family_with_the_task():
    members = {"charlm": ["shakespeare"], "translation": ["multi30k_en_de"]}
    check_summary_target("nlp", members, ["charlm"], "r/t.md")
    check_summary_target("nlp", members, ["charlm"], "r/f.png", "shakespeare")
    with pytest.raises(ConfigError, match=r"group='nlp' in r/t.md: none of its families"):
        check_summary_target("nlp", members, ["vision"], "r/t.md")
    with pytest.raises(ConfigError, match=r"task='multi30k_en_de' in r/f.png: .*shakespeare"):
        check_summary_target("nlp", members, ["charlm"], "r/f.png", "multi30k_en_de")


def test_a_task_figure_finds_the_listed_family_that_has_the_task():
    members = {"charlm": ["shakespeare"], "translation": ["multi30k_en_de"]}
    both = ["charlm", "translation"]
    assert family_of_task("nlp", members, both, "multi30k_en_de", "r/g.png") == "translation"
    assert family_of_task("nlp", members, both, "shakespeare", "r/g.png") == "charlm"
    with pytest.raises(ConfigError, match=r"task='multi30k_en_de' in r/g.png: .*shakespeare"):
        family_of_task("nlp", members, ["charlm"], "multi30k_en_de", "r/g.png")
    with pytest.raises(ConfigError, match=r"task='shakespeare' .*none: add one to `families`"):
        family_of_task("nlp", members, ["vision"], "shakespeare", "r/g.png")


def test_score_figure_of_another_group_is_refused():
    check_score("nlp", "score", "score", "r/f.png")
    with pytest.raises(ConfigError, match=r"score='accuracy' in r/f.png: .* is 'score'"):
        check_score("nlp", "accuracy", "score", "r/f.png")


# -- the figure jobs: each model.pt is its run's -----------------------------------------------
class Fields(dict):
    """A Snakemake job's named fields (input, params, ...): attributes, items() and get()."""

    __getattr__ = dict.__getitem__


def figure_job(tmp_path, models, hparams, inputs) -> Fields:
    return Fields(
        rule="vision_attention",
        threads=1,
        config={},
        input=Fields(**inputs, models=[str(m) for m in models]),
        params=Fields(hparams=hparams, device="cpu"),
        wildcards=Fields(task="cifar10"),
        output=Fields(png=str(tmp_path / "a.png"), pdf=str(tmp_path / "a.pdf")),
    )


@pytest.fixture(scope="module")
def qkv_run(tmp_path_factory, one_thread):
    """A tiny vision run's folder (variant qkv) and its inputs."""
    import torch
    from kvt import runner

    root = tmp_path_factory.mktemp("qkv")
    inputs = vision_inputs(root / "inputs")
    run = root / "vision" / "qkv"
    hp = tiny_hparams("vision", attention="qkv")
    runner.train(hp, run, run / "model.pt", torch.device("cpu"), inputs=inputs)
    return run, inputs


def test_figure_job_refuses_another_runs_weights_naming_both(tmp_path, qkv_run):
    """qkv's model.pt copied into the kv folder would draw qkv's maps in kv's row."""
    from kvt.experiments.vision import attention_figure_job

    run, inputs = qkv_run
    own = tiny_hparams("vision", attention="qkv")
    attention_figure_job(figure_job(tmp_path, [run / "model.pt"], [own], inputs))
    assert (tmp_path / "a.png").stat().st_size > 0  # its own weights: drawn

    swapped = tmp_path / "kv" / "model.pt"
    swapped.parent.mkdir()
    shutil.copy(run / "model.pt", swapped)
    (tmp_path / "a.png").unlink()
    kv = tiny_hparams("vision", attention="kv")
    job = figure_job(tmp_path, [run / "model.pt", swapped], [own, kv], inputs)
    with pytest.raises(RuntimeError) as err:
        attention_figure_job(job)
    message = str(err.value)
    assert str(swapped) in message and "belongs to another run" in message
    assert "/qkv/" in message and "/kv/" in message and "attention='qkv' (expected 'kv')" in message
    assert not (tmp_path / "a.png").exists()


def test_cross_attention_job_checks_its_weights_too(tmp_path, qkv_run):
    """The translation figure's job reads first_models as the vision one does: a file of another
    run (here another family's) is refused before it is used."""
    from kvt.experiments.translation import cross_attention_job

    run, inputs = qkv_run
    expected = tiny_hparams("translation", attention="qkv")
    with pytest.raises(
        RuntimeError, match=r"belongs to another run: .* this job is for translation/"
    ):
        cross_attention_job(figure_job(tmp_path, [run / "model.pt"], [expected], inputs))


# -- through Snakemake -------------------------------------------------------------------------
def dry_run(tmp_path: Path, target: str) -> str:
    results = tmp_path / "results"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--config",
            f"results={results}",
            "families=[synthetic]",
            "--",
            str(results / target),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode != 0, res.stdout
    return res.stderr + res.stdout


@pytest.mark.slow
def test_seed_beyond_numpys_range_stops_a_dry_run_naming_the_wildcard(tmp_path):
    """Before, seed\\d+ accepted it and every train job crashed on numpy's seed range."""
    run = f"synthetic/reverse/n64-d64-l2-h2/kv/seed{2**32}"
    out = dry_run(tmp_path, f"{run}/test.json")
    assert f"wildcard seed={2**32} in {tmp_path / 'results' / run}" in out
    assert "Job stats" not in out and "synthetic_train" not in out.split("Error")[-1]
