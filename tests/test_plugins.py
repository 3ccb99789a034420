"""An experiment is a plugin: the toy experiment of tests/plugins (a declaration and a runtime,
nothing else) registered through KVT_PLUGINS alone is scheduled by the workflow, checked by the
family contract tests and timed by the benchmarks. Each check runs in a subprocess with the
variable set, so the rest of the suite sees the registry as it ships."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kvt.families import PLUGINS_ENV

pytestmark = pytest.mark.slow  # subprocesses: snakemake, pytest, the benchmark

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "plugins"


def with_toy() -> dict:
    env = dict(os.environ)
    env[PLUGINS_ENV] = "toy_family"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), env.get("PYTHONPATH")) if p)
    return env


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=ROOT, env=with_toy(), capture_output=True, text=True, timeout=600, **kw
    )


def test_the_workflow_schedules_a_plugin_experiment(tmp_path):
    res = run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--quiet",
            "rules",
            "--cores",
            "1",
            "--config",
            f"results={tmp_path}/results",
            "families=[toy]",
        ]
    )
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout + res.stderr
    # its one configuration x 3 variants x 3 seeds, from the generic train and eval rules
    assert "toy_train 9" in " ".join(out.split()) and "toy_eval 9" in " ".join(out.split())
    assert "synthetic_train" not in out


def test_the_contract_tests_check_a_plugin_experiment():
    res = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not slow",
            "tests/test_families.py",
            "-k",
            "toy",
            "-rA",
        ]
    )
    assert res.returncode == 0, res.stdout[-3000:]
    passed = [
        line for line in res.stdout.splitlines() if line.startswith("PASSED") and "[toy" in line
    ]
    names = {line.split("::")[1].split("[")[0] for line in passed}
    assert {
        "test_schema_hparams_and_defaults_come_from_the_declaration",
        "test_every_family_model_trains_with_every_variant",
    } <= names


def test_the_benchmarks_time_a_plugin_experiment(tmp_path):
    out = tmp_path / "step.csv"
    res = run(
        [
            sys.executable,
            "-m",
            "kvt.bench.step",
            "--device",
            "cpu",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--families",
            "toy",
            "--out",
            str(out),
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    from kvt.attention_names import attention_names

    # every registered variant, the plugin's runtime unchanged
    assert {(r["family"], r["variant"]) for r in rows} == {("toy", v) for v in attention_names()}
