"""Config resolution outside Snakemake: preset precedence, type coercion of --config strings,
defaults from the family declarations, the grid, the per-run hyperparameters, errors that name
the bad key, and the code hashes that make model edits rerun (only) the jobs they affect."""

import shutil
from pathlib import Path

import pytest
import yaml
from kvt.config import ConfigError, code_hash, family_code_hashes, load_schema, resolve
from kvt.families import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
SYN = FAMILIES["synthetic"]


@pytest.fixture(scope="module")
def base():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture(scope="module")
def schema():
    return load_schema(ROOT / "workflow/schemas/config.schema.yaml")


def test_default_schema_path_is_the_workflow_schema(schema):
    assert load_schema() == schema


def test_paper_default_is_the_protocol(base, schema):
    cfg = resolve(base, {}, schema)
    syn = cfg["synthetic"]
    assert cfg["preset"] == "paper" and cfg["seeds"] == [0, 1, 2]
    assert (syn["train_size"], syn["val_size"], syn["test_size"]) == (50000, 1000, 10000)
    assert (syn["epochs"], syn["batch_size"], syn["lr"], syn["grad_clip"]) == (2, 128, 0.001, 5.0)
    assert (syn["warmup_steps"], syn["val_per_epoch"], syn["dropout"]) == (5, 4, 0.1)
    assert syn["tasks"] == ["reverse", "sort", "copy", "swap", "sub"]
    for task in syn["tasks"]:
        assert len(SYN.configs(syn, task)) == 16
    assert syn == SYN.defaults()  # config.yaml's section is empty: the declaration's defaults


def test_command_line_beats_preset_beats_file(base, schema):
    cfg = resolve(base, {"preset": "cpu", "synthetic": {"epochs": "7"}}, schema)
    assert cfg["synthetic"]["epochs"] == 7  # string from --config, coerced to the schema's int
    assert base["presets"]["cpu"]["synthetic"]["epochs"] != 7
    assert cfg["synthetic"]["train_size"] == base["presets"]["cpu"]["synthetic"]["train_size"]
    assert cfg["synthetic"]["train_size"] != SYN.defaults()["train_size"]
    assert "lr" not in base["presets"]["cpu"]["synthetic"]
    assert cfg["synthetic"]["lr"] == SYN.defaults()["lr"]  # untouched by the preset
    assert cfg["seeds"] == [0, 1]
    # a value in the file's section is overlaid by the preset's, and survives where it has none
    edited = {**base, "synthetic": {"train_size": 123, "lr": 0.02}}
    cfg = resolve(edited, {"preset": "cpu"}, schema)
    assert cfg["synthetic"]["train_size"] == base["presets"]["cpu"]["synthetic"]["train_size"]
    assert cfg["synthetic"]["lr"] == 0.02


def test_strings_are_coerced_by_schema_type(base, schema):
    cfg = resolve(
        base,
        {
            "seeds": ["3", "4"],
            "synthetic": {"sdpa": "false", "lr": "0.01", "grid": {"seq_len": ["16"]}},
        },
        schema,
    )
    assert cfg["seeds"] == [3, 4]
    assert cfg["synthetic"]["sdpa"] is False and cfg["synthetic"]["lr"] == 0.01
    assert cfg["synthetic"]["grid"]["seq_len"] == [16]


def test_missing_keys_get_declared_defaults(base, schema):
    trimmed = yaml.safe_load((ROOT / "config.yaml").read_text())
    del trimmed["threads"], trimmed["synthetic"]
    cfg = resolve(trimmed, {}, schema)
    assert cfg["threads"] == 1 and cfg["synthetic"] == SYN.defaults()
    assert cfg["synthetic"]["pos_dim"] == 10
    # a partial section (and a partial grid) is completed key by key
    trimmed["synthetic"] = {"pos_dim": 7, "grid": {"seq_len": [32]}}
    syn = resolve(trimmed, {}, schema)["synthetic"]
    assert syn["pos_dim"] == 7 and syn["lr"] == 0.001
    assert syn["grid"] == {**SYN.defaults()["grid"], "seq_len": [32]}


def test_enums_come_from_the_registries(schema):
    import kvt
    from kvt.attention_names import attention_names
    from kvt.data.synthetic import TASKS

    assert attention_names() == list(kvt.ATTENTION)  # the torch-free reading of the registry
    props = schema["properties"]
    assert props["attentions"]["items"]["enum"] == list(kvt.ATTENTION)
    assert props["families"]["items"]["enum"] == list(FAMILIES)
    tasks = props["synthetic"]["properties"]["tasks"]["items"]["enum"]
    assert tasks == list(SYN.tasks) == ["reverse", "sort", "copy", "swap", "sub"]  # paper order
    assert set(tasks) == set(TASKS)


def test_errors_name_every_bad_key(base, schema):
    with pytest.raises(ConfigError) as err:
        resolve(base, {"threads": 0, "synthetic": {"select": "first"}}, schema)
    assert "threads: 0 is less than the minimum" in str(err.value)
    assert "synthetic.select: 'first' is not one of" in str(err.value)
    with pytest.raises(ConfigError, match="'nope'"):
        resolve(base, {"attentions": ["kv", "nope"]}, schema)
    with pytest.raises(ConfigError, match="'shuffle'"):
        resolve(base, {"synthetic": {"tasks": ["sort", "shuffle"]}}, schema)


@pytest.mark.parametrize(
    "overrides, where, key",
    [
        ({"synthetic": {"learning_rate": 0.1}}, "synthetic", "learning_rate"),
        ({"synthetic": {"grid": {"seqlen": [8]}}}, "synthetic.grid", "seqlen"),
        ({"synthetic": {"keep_lst": True}}, "synthetic", "keep_lst"),
    ],
)
def test_misspelt_key_in_a_family_section_is_named(base, schema, overrides, where, key):
    with pytest.raises(ConfigError) as err:
        resolve(base, overrides, schema)
    assert f"{where}: " in str(err.value) and repr(key) in str(err.value)


def test_misspelt_key_in_a_preset_is_named(base, schema):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["presets"]["smoke"]["synthetic"]["epoch"] = 1
    resolve(config, {}, schema)  # not the active preset: not applied
    with pytest.raises(ConfigError, match="synthetic: .*'epoch'"):
        resolve(config, {"preset": "smoke"}, schema)


def test_a_section_may_replace_the_top_level_seeds(base, schema):
    cfg = resolve(base, {"preset": "cpu"}, schema)
    # the cpu preset: 5 synthetic seeds (10 pairs per comparison), 2 for the other families
    assert cfg["seeds"] == [0, 1] and cfg["synthetic"]["seeds"] == [0, 1, 2, 3, 4]
    assert {s for *_, s in SYN.runs(cfg["synthetic"], ["kv"], cfg["seeds"])} == {0, 1, 2, 3, 4}
    vision = FAMILIES["vision"]
    assert cfg["vision"]["seeds"] is None
    assert {s for *_, s in vision.runs(cfg["vision"], ["kv"], cfg["seeds"])} == {0, 1}
    # from --config, as strings: coerced through the list-or-null schema
    cfg = resolve(base, {"synthetic": {"seeds": ["3", "5"]}}, schema)
    assert cfg["synthetic"]["seeds"] == [3, 5]
    cfg = resolve(base, {"preset": "cpu", "seeds": [4], "synthetic": {"seeds": "null"}}, schema)
    assert {s for *_, s in SYN.runs(cfg["synthetic"], ["kv"], cfg["seeds"])} == {4}


@pytest.mark.parametrize("seeds", [[], [-1], [1, 1], "three"])
def test_bad_section_seeds_are_named(base, schema, seeds):
    with pytest.raises(ConfigError, match=r"synthetic\.seeds"):
        resolve(base, {"synthetic": {"seeds": seeds}}, schema)


def test_unknown_preset_is_named(base, schema):
    with pytest.raises(ConfigError, match="'fast'.*paper"):
        resolve(base, {"preset": "fast"}, schema)


def test_swap_needs_even_lengths_and_batches_must_fit(base, schema):
    with pytest.raises(ConfigError, match="even"):
        resolve(base, {"synthetic": {"grid": {"seq_len": [9]}}}, schema)
    resolve(base, {"synthetic": {"grid": {"seq_len": [9]}, "tasks": ["sort"]}}, schema)  # no swap
    with pytest.raises(ConfigError, match="no training batch"):
        resolve(base, {"synthetic": {"train_size": 10}}, schema)
    with pytest.raises(ConfigError, match="d_model=64 is not divisible by heads=3"):
        resolve(base, {"synthetic": {"grid": {"d_model": [64], "heads": [3]}}}, schema)
    with pytest.raises(ConfigError, match="divisible"):
        SYN.check(
            resolve(base, {}, schema)["synthetic"]
            | {"grid": {"seq_len": [8], "d_model": [10], "depth": [1], "heads": [4]}}
        )


def test_hparams_of_one_run(base, schema):
    syn = resolve(base, {}, schema)["synthetic"]
    hp = SYN.hparams(syn, "sort", "n128-d64-l4-h2", "kv_pos", "2")
    assert hp["seed"] == 2 and hp["family"] == "synthetic" and hp["attention"] == "kv_pos"
    assert hp["task"] == "sort" and hp["cfg"] == "n128-d64-l4-h2"
    assert (hp["seq_len"], hp["d_model"], hp["depth"], hp["heads"]) == (128, 64, 4, 2)
    # every run setting of the section, as configured; none of the section's other keys
    for key in (
        "train_size",
        "val_size",
        "test_size",
        "epochs",
        "batch_size",
        "lr",
        "warmup_steps",
        "grad_clip",
        "dropout",
        "val_per_epoch",
        "select",
        "scale",
        "pos_dim",
        "pos_per_head",
        "sdpa",
    ):
        assert hp[key] == syn[key], key
    for key in ("tasks", "grid", "runtime", "mem_mb"):
        assert key not in hp, key
    assert SYN.hparams({**syn, "lr": 0.5}, "sort", "n128-d64-l4-h2", "kv_pos", 2)["lr"] == 0.5
    with pytest.raises(ConfigError, match="unknown synthetic configuration"):
        SYN.hparams(syn, "sort", "n1-d1-l1-h1", "kv", 0)


def test_configs_span_the_grid(base, schema):
    syn = resolve(
        base,
        {
            "synthetic": {
                "grid": {"seq_len": [8, 16], "d_model": [32], "depth": [1, 3], "heads": [2]}
            }
        },
        schema,
    )["synthetic"]
    configs = SYN.configs(syn, "copy")
    assert configs == {
        "n8-d32-l1-h2": {"seq_len": 8, "d_model": 32, "depth": 1, "heads": 2},
        "n8-d32-l3-h2": {"seq_len": 8, "d_model": 32, "depth": 3, "heads": 2},
        "n16-d32-l1-h2": {"seq_len": 16, "d_model": 32, "depth": 1, "heads": 2},
        "n16-d32-l3-h2": {"seq_len": 16, "d_model": 32, "depth": 3, "heads": 2},
    }
    runs = SYN.runs({**syn, "tasks": ["copy", "sort"]}, ["kv", "qkv"], [0, 1])
    assert len(runs) == 2 * 4 * 2 * 2 and len(set(runs)) == len(runs)
    assert ("sort", "n16-d32-l3-h2", "qkv", 1) in runs


def test_test_hparams_have_the_keys_a_train_job_gets(base, schema):
    """The trainer tests' tiny_hparams must not drift from what the workflow passes a job."""
    from conftest import tiny_hparams

    syn = resolve(base, {"preset": "smoke"}, schema)["synthetic"]
    cfg = next(iter(SYN.configs(syn, "copy")))
    assert set(tiny_hparams()) == set(SYN.hparams(syn, "copy", cfg, "kv", 0))


def test_misspelt_attention_option_is_named():
    from kvt import build_attention

    with pytest.raises(TypeError, match="pos_dims"):
        build_attention("kv_pos", 16, 2, pos_dims=20)
    with pytest.raises(TypeError, match="pos_dims"):
        build_attention("qkv", 16, 2, pos_dims=20)  # a typo is an error whatever the variant
    # an option of another variant is dropped: one set of options serves every variant
    qkv = build_attention("qkv", 16, 2, pos_dim=10)
    assert not hasattr(qkv, "pos_dim") or qkv.pos_dim is None
    kv_pos = build_attention("kv_pos", 16, 2, pos_dim=7)
    kv_pos_10 = build_attention("kv_pos", 16, 2, pos_dim=10)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(kv_pos_10) - n(kv_pos) == 3  # ... and taken by the variant that has it
    assert n(qkv) == n(build_attention("qkv", 16, 2))


def test_code_hash_follows_the_code(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "report").mkdir(parents=True)
    (pkg / "model.py").write_text("a = 1\n")
    (pkg / "other.py").write_text("c = 1\n")
    (pkg / "report" / "tables.py").write_text("b = 1\n")
    before = code_hash(pkg, exclude=("report",))
    (pkg / "report" / "tables.py").write_text("b = 2\n")
    assert code_hash(pkg, exclude=("report",)) == before  # report edits do not retrain
    (pkg / "model.py").write_text("a = 2\n")
    assert code_hash(pkg, exclude=("report",)) != before
    only_model = code_hash(pkg, files=["model.py"])
    (pkg / "other.py").write_text("c = 2\n")
    assert code_hash(pkg, files=["model.py"]) == only_model  # files: only those count
    (pkg / "model.py").write_text("a = 3\n")
    assert code_hash(pkg, files=["model.py"]) != only_model


def test_family_code_hashes_follow_each_familys_imports(tmp_path):
    """A family's hash covers what its jobs import (kvt.codehash), and nothing else."""
    pkg = tmp_path / "kvt"
    shutil.copytree(ROOT / "lib" / "kvt", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    names = list(FAMILIES)

    def edit(rel):
        path = pkg / rel
        path.write_text(path.read_text() + "\n# edited\n")
        return family_code_hashes(pkg)

    before = family_code_hashes(pkg)
    assert list(before) == names and len(set(before.values())) == len(names)
    assert family_code_hashes(pkg) == before  # deterministic

    def changed(after):
        return [n for n in names if after[n] != before[n]]

    after = edit("models/synthetic.py")  # a synthetic-only file
    assert changed(after) == ["synthetic"]
    before, after = after, edit("data/vision.py")  # the image loader: the anomaly features read it
    assert changed(after) == ["vision", "anomaly"]
    before, after = after, edit("data/text.py")  # the text datasets' reader
    assert changed(after) == ["charlm", "translation"]
    for no_run in (
        "report/tables.py",
        "bench/layer.py",
        "preflight.py",
        "expect.py",
        "missing_data.py",
        "data/commands.py",
        "config.py",
    ):  # no job runs them
        before, after = after, edit(no_run)
        assert after == before, no_run
    for shared in ("attention.py", "trainer.py", "runner.py", "jobs.py", "models/config.py"):
        before, after = after, edit(shared)
        assert changed(after) == names, shared


def test_a_list_of_presets_overlays_them_in_order(base, schema):
    from kvt.config import preset_label

    cfg = resolve(base, {"preset": ["cpu", "extended"]}, schema)
    ext = base["presets"]["extended"]
    assert cfg["attentions"] == ext["attentions"] and len(cfg["attentions"]) == 6
    assert cfg["seeds"] == [0, 1, 2]  # extended's, over cpu's [0, 1]
    assert cfg["synthetic"]["seeds"] is None  # cpu's 5 synthetic seeds reset
    assert cfg["synthetic"]["train_size"] == base["presets"]["cpu"]["synthetic"]["train_size"]
    # the other order: cpu's seeds win
    assert resolve(base, {"preset": ["extended", "cpu"]}, schema)["seeds"] == [0, 1]
    # the command line still beats both
    assert resolve(base, {"preset": ["cpu", "extended"], "seeds": [7]}, schema)["seeds"] == [7]
    assert preset_label(["cpu", "extended"]) == "[cpu,extended]"
    assert preset_label("cpu") == "cpu"
    with pytest.raises(ConfigError, match=r"unknown preset 'gpu'.*preset=\[cpu,gpu\]"):
        resolve(base, {"preset": ["cpu", "gpu"]}, schema)
    with pytest.raises(ConfigError, match="neither a preset's name nor a list"):
        resolve(base, {"preset": []}, schema)


def test_first_configurations_keep_one_configuration_a_task(base, schema):
    full = resolve(base, {}, schema)
    cfg = resolve(base, {"configurations": "first"}, schema)
    for name, fam in FAMILIES.items():
        for task in fam.tasks:
            if fam.per_task and task not in cfg[name]:
                continue
            first = next(iter(fam.configs(full[name], task).items()))
            assert fam.configs(cfg[name], task) == dict([first]), (name, task)
    # the paper's synthetic grid has 16 configurations a task; the first is each axis's first
    assert len(SYN.configs(full["synthetic"], "reverse")) == 16
    assert list(SYN.configs(cfg["synthetic"], "reverse")) == ["n64-d64-l2-h2"]
    with pytest.raises(ConfigError, match="configurations: 'some' is not one of"):
        resolve(base, {"configurations": "some"}, schema)
