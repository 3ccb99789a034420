"""Config resolution outside Snakemake: preset precedence, type coercion of --config strings,
the grid, the per-run hyperparameters and the code hash that makes model edits rerun jobs."""

from pathlib import Path

import pytest
import yaml

from kvt.config import (ConfigError, code_hash, load_schema, resolve, synthetic_configs,
                        synthetic_hparams)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture(scope="module")
def schema():
    return load_schema(ROOT / "workflow/schemas/config.schema.yaml")


def test_paper_default_is_the_protocol(base, schema):
    cfg = resolve(base, {}, schema)
    syn = cfg["synthetic"]
    assert cfg["preset"] == "paper" and cfg["seeds"] == [0, 1, 2]
    assert (syn["train_size"], syn["val_size"], syn["test_size"]) == (50000, 1000, 10000)
    assert (syn["epochs"], syn["batch_size"], syn["lr"], syn["grad_clip"]) == (2, 128, 0.001, 5.0)
    assert len(synthetic_configs(syn)) == 16


def test_command_line_beats_preset_beats_file(base, schema):
    cfg = resolve(base, {"preset": "cpu", "synthetic": {"epochs": "7"}}, schema)
    assert cfg["synthetic"]["epochs"] == 7  # string from --config, coerced to the schema's int
    assert cfg["synthetic"]["train_size"] == base["presets"]["cpu"]["synthetic"]["train_size"]
    assert cfg["synthetic"]["lr"] == base["synthetic"]["lr"]  # untouched by the preset
    assert cfg["seeds"] == [0, 1]


def test_strings_are_coerced_by_schema_type(base, schema):
    cfg = resolve(base, {"seeds": ["3", "4"], "synthetic": {"fused": "false", "lr": "0.01"}}, schema)
    assert cfg["seeds"] == [3, 4]
    assert cfg["synthetic"]["fused"] is False and cfg["synthetic"]["lr"] == 0.01


def test_missing_keys_get_schema_defaults(base, schema):
    trimmed = yaml.safe_load((ROOT / "config.yaml").read_text())
    del trimmed["synthetic"]["pos_dim"], trimmed["threads"]
    cfg = resolve(trimmed, {}, schema)
    assert cfg["synthetic"]["pos_dim"] == 10 and cfg["threads"] == 1


def test_enums_come_from_the_registries(schema):
    import kvt
    from kvt.data.synthetic import TASKS

    assert schema["properties"]["attentions"]["items"]["enum"] == list(kvt.ATTENTION)
    assert schema["properties"]["synthetic"]["properties"]["tasks"]["items"]["enum"] == list(TASKS)


def test_errors_name_every_bad_key(base, schema):
    with pytest.raises(ConfigError) as err:
        resolve(base, {"threads": 0, "synthetic": {"select": "first"}}, schema)
    assert "threads: 0 is less than the minimum" in str(err.value)
    assert "synthetic.select: 'first' is not one of" in str(err.value)


def test_swap_needs_even_lengths_and_batches_must_fit(base, schema):
    with pytest.raises(ConfigError, match="even"):
        resolve(base, {"synthetic": {"grid": {"seq_len": [9]}}}, schema)
    with pytest.raises(ConfigError, match="no training batch"):
        resolve(base, {"synthetic": {"train_size": 10}}, schema)


def test_hparams_of_one_run(base, schema):
    syn = resolve(base, {}, schema)["synthetic"]
    hp = synthetic_hparams(syn, "sort", "n128-d64-l4-h2", "kv_pos", "2")
    assert hp["seed"] == 2 and hp["family"] == "synthetic" and hp["attention"] == "kv_pos"
    assert (hp["seq_len"], hp["d_model"], hp["depth"], hp["heads"]) == (128, 64, 4, 2)
    with pytest.raises(ConfigError, match="unknown synthetic configuration"):
        synthetic_hparams(syn, "sort", "n1-d1-l1-h1", "kv", 0)


def test_test_hparams_have_the_keys_a_train_job_gets(base, schema):
    """The trainer tests' tiny_hparams must not drift from what the workflow passes a job."""
    from conftest import tiny_hparams

    syn = resolve(base, {"preset": "smoke"}, schema)["synthetic"]
    assert set(tiny_hparams()) == set(synthetic_hparams(syn, "copy", "n8-d16-l1-h2", "kv", 0))


def test_code_hash_follows_the_code(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "report").mkdir(parents=True)
    (pkg / "model.py").write_text("a = 1\n")
    (pkg / "report" / "tables.py").write_text("b = 1\n")
    before = code_hash(pkg, exclude=("report",))
    (pkg / "report" / "tables.py").write_text("b = 2\n")
    assert code_hash(pkg, exclude=("report",)) == before  # report edits do not retrain
    (pkg / "model.py").write_text("a = 2\n")
    assert code_hash(pkg, exclude=("report",)) != before
