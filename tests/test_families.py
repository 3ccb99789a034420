"""The family contract: every family trains through the one runner, resumes bit for bit
(augmentation and set sampling included), and derives its schema, hparams and configurations
from its declaration alone."""

import csv
import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from conftest import FAMILY_INPUTS, TINY, tiny_hparams
from kvt import runner
from kvt.config import load_schema, resolve
from kvt.families import FAMILIES
from kvt.families.base import run_fields
from kvt.trainer import load_checkpoint

CPU = torch.device("cpu")


class Stop(Exception):
    pass


pytestmark = pytest.mark.usefixtures("one_thread")  # runs are compared bit for bit


def rows(folder):
    with open(Path(folder) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_time"} for r in csv.DictReader(f)]


def weights(folder):
    return torch.load(Path(folder) / "model.pt", weights_only=False)["model"]


def test_every_family_declares_its_test_and_benchmark_cases():
    """The plugin supplies them (Family.tiny, bench_cases): conftest's TINY and the benchmarks'
    CASES derive from the registry, nothing else lists families."""
    from kvt.bench.step import CASES

    assert set(TINY) == set(FAMILIES)
    assert {c.family for c in CASES} == set(FAMILIES)
    for name, fam in FAMILIES.items():
        assert fam.tiny.task in fam.tasks and all(task in fam.tasks for task, _ in fam.bench_cases)


def main_metric(hp: dict) -> str:
    return FAMILIES[hp["family"]].table.metrics(hp["task"])[0][0]


@pytest.mark.slow
@pytest.mark.parametrize("family", list(TINY))
def test_every_family_resumes_bit_for_bit(tmp_path, family):
    """Killed between two checkpoints, then started again: the same metrics, weights and test
    results as an uninterrupted run (the batch of a step is a function of seed and step)."""
    inputs = FAMILY_INPUTS[family](tmp_path)
    hp = tiny_hparams(family)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    record = runner.train(hp, whole, whole / "model.pt", CPU, inputs=inputs)
    total = record["steps"]
    assert total >= 8
    checkpoints = [int(r["step"]) for r in rows(whole)]
    # after the first checkpoint past step 0, before the next one
    stop_at = next(s for s in range(checkpoints[1] + 1, total) if s not in checkpoints)

    def stop(step):
        if step == stop_at:
            raise Stop

    with pytest.raises(Stop):
        runner.train(hp, broken, broken / "model.pt", CPU, inputs=inputs, on_step=stop)
    assert load_checkpoint(broken / "last.pt")["step"] == max(s for s in checkpoints if s < stop_at)
    seen = []
    runner.train(hp, broken, broken / "model.pt", CPU, inputs=inputs, on_step=seen.append)
    assert seen[0] == checkpoints[1] + 1, "the second call must resume, not start again"
    assert rows(broken) == rows(whole)
    a, b = weights(whole), weights(broken)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ta = runner.test(whole / "model.pt", tmp_path / "a.json", CPU, inputs=inputs)
    tb = runner.test(broken / "model.pt", tmp_path / "b.json", CPU, inputs=inputs)
    assert ta == tb and 0 <= ta[main_metric(hp)] < float("inf")
    assert json.loads((broken / "run.json").read_text())["resumed_at"]


def test_vision_augmentation_is_seeded_by_step(tmp_path):
    """CIFAR batches are augmented: two seeds see different images, one seed the same ones."""
    from kvt.experiments import vision

    inputs = FAMILY_INPUTS["vision"](tmp_path)
    hp = tiny_hparams("vision")
    first = next(vision.train_data(hp, inputs).batches(3))[0]
    again = next(vision.train_data(hp, inputs).batches(3))[0]
    other = next(vision.train_data({**hp, "seed": 1}, inputs).batches(3))[0]
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_schema_hparams_and_defaults_come_from_the_declaration(name):
    """One source: the schema's properties, its defaults and a run's hparams all follow the
    family's dataclass, so a new key is written once."""
    fam = FAMILIES[name]
    schema = load_schema()
    section = schema["properties"][name]
    assert set(section["properties"]) == {f for f in fam.defaults()}
    assert all(p.get("description") for p in section["properties"].values())
    config = resolve({"preset": "paper", "presets": {"paper": {}}}, {}, schema)
    assert config[name] == fam.defaults()
    task = fam.defaults()["tasks"][0]
    cfg = next(iter(fam.configs(config[name], task)))
    hp = fam.hparams(config[name], task, cfg, "kv", 1)
    settings = set(run_fields(fam.config)) - set(fam.tasks)
    if fam.per_task:
        settings |= {k for k in config[name][task] if k not in ("grid", "runtime", "mem_mb")}
    # settings a family derives (translation: the languages, from the task's name) are no keys
    derived = set(fam.settings(config[name], task)) - settings - {"grid", "runtime", "mem_mb"}
    assert not derived & set(section["properties"]) and not derived & set(
        config[name][task] if fam.per_task else {}
    )
    settings |= derived
    assert set(hp) == {"family", "task", "attention", "seed", "cfg"} | set(fam.grid_tags) | settings
    # not hyperparameters: toggling them must not rerun a job (hparams are a Snakemake param)
    assert not {"keep_last", "runtime", "mem_mb", "grid", "tasks", "device"} & set(hp)


def test_family_tasks_are_the_schema_enum_and_errors_name_the_key():
    schema = load_schema()
    base = {"preset": "paper", "presets": {"paper": {}}}
    with pytest.raises(ValueError, match="'epoch' was unexpected"):
        resolve(base, {"vision": {"cifar10": {"epoch": 3}}}, schema)
    with pytest.raises(ValueError, match="imagenet"):
        resolve(base, {"anomaly": {"backbone": "resnet"}}, schema)
    with pytest.raises(ValueError, match="svhn"):
        resolve(base, {"vision": {"tasks": ["svhn"]}}, schema)
    with pytest.raises(ValueError, match="d_model=30 is not divisible by heads=4"):
        resolve(base, {"vision": {"cifar10": {"grid": {"d_model": [30]}}}}, schema)


def test_presets_fill_per_task_settings_partially():
    import yaml
    from kvt.config import SCHEMA

    base = yaml.safe_load((SCHEMA.parents[2] / "config.yaml").read_text())
    cpu = resolve(base, {"preset": "cpu"}, load_schema())
    assert cpu["vision"]["digits"]["epochs"] == 30 and cpu["vision"]["digits"]["lr"] == 1e-3
    assert (
        cpu["vision"]["mnist"]["train_size"] == 20000
        and cpu["vision"]["mnist"]["eval_batch"] == 1000
    )
    paper = resolve(base, {}, load_schema())
    assert paper["vision"]["mnist"]["lr"] == 1e-4 and paper["vision"]["cifar100"]["epochs"] == 50


def test_data_rule_offline_error_names_files_and_leaves_nothing(tmp_path, monkeypatch):
    """Missing files, no download: an error naming every file and the folder; with a failing
    download (offline), the same and no half-written file."""
    import torchvision.datasets as tvd
    from kvt.data.vision import DataMissingError, prepare

    with pytest.raises(DataMissingError) as err:
        prepare("mnist", tmp_path / "data", download_missing=False, fixtures=False)
    assert "train-images-idx3-ubyte" in str(err.value) and str(tmp_path / "data") in str(err.value)

    class Offline(tvd.MNIST):  # keeps the class's archive table (named in the error)
        def __init__(self, *args, **kwargs):
            raise OSError("no network")

    monkeypatch.setattr(tvd, "MNIST", Offline)
    with pytest.raises(RuntimeError, match="t10k-labels-idx1-ubyte"):
        prepare(
            "mnist", tmp_path / "data", download_missing=True, fixtures=False, retries=2, wait=0
        )
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_fixtures_never_overwrite_real_files(tmp_path):
    from kvt.data.vision import DataMissingError, prepare

    info = prepare("cifar10", tmp_path, download_missing=False, fixtures=True)
    assert info["source"] == "fixture"
    again = prepare("cifar10", tmp_path, download_missing=False, fixtures=True)
    assert again["source"] == "fixture" and again["files"] == info["files"]
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataMissingError, match="test_batch"):
        prepare("cifar10", tmp_path, download_missing=False, fixtures=True)


def test_attention_figure_has_a_row_per_variant(tmp_path):
    from kvt.experiments import vision
    from kvt.report.attention import attention_figure

    inputs = FAMILY_INPUTS["vision"](tmp_path)
    panels = {}
    for variant in ("qkv", "kv", "kv_pos"):
        hp = tiny_hparams("vision", attention=variant)
        model = runner.experiment("vision").build_model(hp).eval()
        image, label, maps, scores = vision.first_layer_maps(model, hp, inputs)
        assert maps.shape == scores.shape == (2, 17, 17)
        assert torch.allclose(maps.sum(-1), torch.ones(2, 17))
        assert torch.allclose(scores.softmax(-1), maps, atol=1e-6)  # the maps' own scores
        symmetric = torch.allclose(scores, scores.transpose(-1, -2), atol=1e-5)
        assert symmetric == (variant == "kv")  # kv_pos adds a per-key column term
        panels[variant] = (image, label, maps, scores)
    fig = attention_figure(panels, "cifar10")
    assert len(fig.axes) == 3 * 3 + 2 * 3  # three panels a variant, two colour bars
    fig.savefig(tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 10_000


@pytest.mark.parametrize("variant", sorted(__import__("kvt").ATTENTION))
@pytest.mark.parametrize("family", list(TINY))
def test_every_family_model_trains_with_every_variant(tmp_path, family, variant):
    """Through the contract (build_model, train_data, step): a finite loss on a real batch, and a
    finite gradient for every parameter, non-zero except where the row softmax cancels it (the
    bias of map_pos; a key bias beside a query projection; the set model's output bias, added to
    every position's score before the softmax over the set)."""
    inputs = FAMILY_INPUTS[family](tmp_path)
    hp = tiny_hparams(family, attention=variant)
    rt = runner.experiment(hp["family"])
    hp.update(rt.data_facts(hp, inputs))
    torch.manual_seed(0)
    model = rt.build_model(hp).train()
    out = rt.step(model, next(rt.train_data(hp, inputs).batches(0)))
    assert torch.isfinite(out["loss"]) and out["count"] > 0
    assert 0 <= int(out.get("acc", 0)) <= out["count"]
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        cancelled = (
            name.endswith("map_pos.bias")
            or (family == "anomaly" and name == "head.4.bias")
            or (
                name.endswith("k_proj.bias")
                and hasattr(model.get_submodule(name.rsplit(".", 2)[0]), "q_proj")
            )
        )
        if not cancelled:
            assert p.grad.abs().sum() > 0, name


def test_config_and_dag_helpers_do_not_import_torch():
    """The DAG is built without torch: the config, the family registry and the report core."""
    import subprocess
    import sys

    code = (
        "import sys; from kvt.config import load_schema, resolve, family_code_hashes; "
        "import kvt.report.tables, kvt.report.summary; s = load_schema(); "
        "resolve({'preset': 'paper', 'presets': {'paper': {}}}, {}, s); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_every_section_is_checked_listed_in_families_or_not():
    """A vision grid that cannot build (d_model 30, heads 4) stops a run of synthetic alone too:
    vision's rules can still be reached by naming one of its output paths."""
    base = {"preset": "paper", "presets": {"paper": {}}}
    bad = {"vision": {"cifar10": {"grid": {"d_model": [30]}}}}
    for families in (["synthetic"], ["vision"]):
        with pytest.raises(ValueError, match="vision.cifar10.grid: d_model=30 is not divisible"):
            resolve(base, {**bad, "families": families}, load_schema())


def test_tables_of_one_family_from_a_summary_of_several():
    """Grid columns another family lacks come back from CSV as floats; a family's tables show
    its own grid values as integers, and only its own rows."""
    import io

    import pandas as pd
    from kvt.report.tables import by_config_table, params_table

    rows = []
    for att, acc in (("qkv", 0.5), ("kv", 0.25)):
        rows.append(
            {
                "family": "synthetic",
                "task": "sort",
                "cfg": "n8-d16-l1-h2",
                "attention": att,
                "seed": 0,
                "seq_len": 8,
                "d_model": 16,
                "depth": 1,
                "heads": 2,
                "test_acc": acc,
                "n_params": 100,
            }
        )
        rows.append(
            {
                "family": "vision",
                "task": "digits",
                "cfg": "d16-l1-h2",
                "attention": att,
                "seed": 0,
                "d_model": 16,
                "depth": 1,
                "heads": 2,
                "test_acc": acc + 0.1,
                "n_params": 200,
            }
        )
    summary = pd.read_csv(io.StringIO(pd.DataFrame(rows).to_csv(index=False)))
    assert summary["seq_len"].dtype == float  # NaN in the vision rows
    syn = by_config_table(summary, "synthetic")
    assert list(syn["seq_len"]) == [8, 8] and syn["seq_len"].dtype.kind == "i"
    vis = by_config_table(summary, "vision")
    assert set(vis["task"]) == {"digits"} and list(vis["mean"]) == [0.6, 0.35]
    assert (
        "seq_len" not in by_config_table(summary, "vision").columns or vis["seq_len"].isna().all()
    )
    assert list(params_table(summary, "vision")["task"]) == ["digits"]


def test_a_checkpoint_of_other_hparams_is_set_aside_not_resumed(tmp_path):
    """A run killed, then its configuration changed: the new run starts at step 1 (the old
    progress belongs to another run) and the old checkpoint is kept beside it."""
    hp = tiny_hparams("synthetic")
    run = tmp_path / "run"

    def stop(step):
        if step == 6:
            raise Stop

    with pytest.raises(Stop):
        runner.train(hp, run, run / "model.pt", CPU, on_step=stop)
    assert (run / "last.pt").exists()
    seen = []
    runner.train({**hp, "lr": hp["lr"] / 2}, run, run / "model.pt", CPU, on_step=seen.append)
    assert seen[0] == 1 and (run / "last.stale.pt").exists()
    fresh = tmp_path / "fresh"
    runner.train({**hp, "lr": hp["lr"] / 2}, fresh, fresh / "model.pt", CPU)
    assert rows(run) == rows(fresh)


@pytest.mark.parametrize("variant", sorted(__import__("kvt").ATTENTION))
@pytest.mark.parametrize("family", list(FAMILY_INPUTS))
def test_forward_flops_equal_torchs_flop_counter(family, variant, tmp_path):
    """The hook count equals FlopCounterMode's on the manual path (it sees every product)."""
    from kvt.attention import SelfAttention
    from torch.utils.flop_counter import FlopCounterMode

    hp = tiny_hparams(family, attention=variant)
    rt = runner.experiment(hp["family"])
    inputs = FAMILY_INPUTS[family](tmp_path)
    hp = {**hp, **rt.data_facts(hp, inputs)}
    model = rt.build_model(hp)
    batch = next(rt.train_data(hp, inputs).batches(0))
    ours = runner.forward_flops(model, batch, rt.step)
    model.eval()
    for m in model.modules():
        if isinstance(m, SelfAttention):
            m.sdpa = False
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        rt.step(model, tuple(t[:1] for t in batch))
    assert ours == counter.get_total_flops() > 0


def test_forward_flops_count_the_query_projection_kv_saves():
    """run.json's FLOPs per forward: kv saves exactly one d x d projection per layer and token."""
    counts = {}
    for variant in sorted(__import__("kvt").ATTENTION):
        hp = tiny_hparams("synthetic", attention=variant)
        rt = runner.experiment("synthetic")
        model = rt.build_model(hp)
        counts[variant] = runner.forward_flops(
            model, next(rt.train_data(hp, {}).batches(0)), rt.step
        )
        assert all(m.sdpa for m in model.modules() if hasattr(m, "sdpa"))  # restored
    n, d, depth = hp["seq_len"], hp["d_model"], hp["depth"]
    assert counts["qkv"] - counts["kv"] == depth * 2 * n * d * d
    assert counts["qkv_pos"] - counts["kv_pos"] == depth * 2 * n * d * d
    for variant in ("kv_pos", "kv_rel", "kv_shared"):
        assert counts[variant] >= counts["kv"]


def test_an_experiment_without_a_required_method_fails_where_it_is_defined():
    """The runtime contract is typed (kvt.experiments.base): a subclass lacking a required
    method is refused when it is defined, naming what it lacks; optional hooks have defaults."""
    from kvt.experiments.base import REQUIRED, Experiment

    with pytest.raises(TypeError, match=r"lacks step, select_on: every experiment defines"):

        class NoStep(Experiment):
            def build_model(self, hp):
                return None

            def train_data(self, hp, inputs):
                return None

            def eval_data(self, hp, split, inputs):
                return None

            def train_settings(self, hp):
                return {}

    for name in FAMILIES:  # every registered family's runtime is a complete Experiment
        rt = runner.experiment(name)
        assert isinstance(rt, Experiment)
        assert all(getattr(type(rt), m) is not getattr(Experiment, m) for m in REQUIRED)


def test_model_configs_receive_exactly_what_they_declare():
    """fields_from: a model setting missing from the hparams is an error naming it (no silent
    default); constants of the architecture (fixed) are not asked for."""
    from kvt.models.config import fields_from
    from kvt.models.synthetic import SyntheticModelConfig

    hp = tiny_hparams("synthetic")
    cfg = fields_from(SyntheticModelConfig, hp)
    assert cfg.d_model == hp["d_model"] and cfg.sdpa == hp["sdpa"] and cfg.num_classes == 10
    with pytest.raises(ValueError, match="SyntheticModelConfig needs pos_dim"):
        fields_from(SyntheticModelConfig, {k: v for k, v in hp.items() if k != "pos_dim"})


def test_the_registry_does_not_import_the_report():
    """families -> report -> families was a cycle: a declaration names the report's reference
    numbers ("module:function"), imported only when the report asks for them."""
    import subprocess
    import sys

    code = (
        "import sys, kvt.families; "
        "print(sorted(m for m in sys.modules if m.startswith('kvt.report')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert FAMILIES["synthetic"].table.reference_of("sort", "kv", "test_acc") is not None


@pytest.mark.parametrize("family", list(TINY))
def test_attention_settings_reach_every_attention_module(family, tmp_path):
    """One dataclass (kvt.settings.AttentionSettings) carries the attention settings from every
    family's config through the hparams to every attention module; pos_form has a key."""
    from kvt.attention import SelfAttention
    from kvt.settings import AttentionSettings

    names = [f.name for f in fields(AttentionSettings)]
    hp = tiny_hparams(family)
    assert set(names) <= set(hp)
    rt = runner.experiment(family)
    hp = {**hp, **rt.bench_facts(hp), "pos_form": "bias", "sdpa": False}
    attns = [m for m in rt.build_model(hp).modules() if isinstance(m, SelfAttention)]
    assert attns and all(m.sdpa is False for m in attns)
    assert all(m.pos_form == "bias" for m in attns if hasattr(m, "map_pos"))
