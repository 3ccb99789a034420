"""Attention galleries: the figure from hand-made maps (rows, columns, blanks, order), the maps
of every family's model on one test example (one per attention call, rows summing to 1 over the
unmasked keys, padding dropped), the token labels, the job, and the rule in the DAG."""

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FAMILY_INPUTS, TINY, tiny_hparams
from kvt import runner
from kvt.attention import SelfAttention
from kvt.families import FAMILIES
from kvt.gallery import call_maps, example_maps, first_example, gallery_job
from kvt.report.gallery import ExampleMaps, gallery_figure

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
CAUSAL = np.triu(np.ones((3, 3), dtype=bool), 1)


def causal_maps(seed: int) -> np.ndarray:
    """3 x 3 rows of weights summing to 1, NaN above the diagonal (a causal map)."""
    m = np.random.default_rng(seed).random((3, 3))
    m[CAUSAL] = 0
    m /= m.sum(1, keepdims=True)
    m[CAUSAL] = np.nan
    return m


def hand_made(seed: int, tokens=("a", "b", "c")) -> ExampleMaps:
    cross = np.full((3, 2), 0.5)
    return ExampleMaps(("enc.attn", "dec.cross"), (True, False), (causal_maps(seed), cross), tokens)


def heat_axes(fig):
    """The panels with a heat map, in figure order (the colour bars have none)."""
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


# -- the figure ----------------------------------------------------------------------------------
def test_gallery_has_a_row_per_variant_in_paper_order_and_a_column_per_call():
    panels = {"kv_shared": hand_made(0), "kv": hand_made(1), "qkv": hand_made(2)}
    fig = gallery_figure(panels, "reverse")
    axes = heat_axes(fig)
    assert len(axes) == 3 * 2
    rows = [axes[i].get_ylabel().split("\n")[0] for i in range(0, 6, 2)]
    assert rows == ["qkv", "kv", "kv_shared"]
    assert [ax.get_title() for ax in axes[:2]] == ["enc.attn", "dec.cross (cross)"]
    shown = np.ma.filled(axes[0].images[0].get_array().astype(float), np.nan)
    assert np.array_equal(np.isnan(shown), CAUSAL)  # masked entries blank, not 0
    np.testing.assert_allclose(shown[~CAUSAL], panels["qkv"].maps[0][~CAUSAL])
    # tokens label the self-attention map only (the cross map's axes are another sequence's)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["a", "b", "c"]
    assert axes[1].get_xticklabels() == []
    assert "reverse" in fig.get_suptitle()


def test_gallery_refuses_variants_of_different_architectures():
    other = ExampleMaps(("enc.attn",), (True,), (causal_maps(0),))
    with pytest.raises(ValueError, match="variant kv recorded the attention calls"):
        gallery_figure({"qkv": hand_made(0), "kv": other}, "reverse")


def test_example_maps_need_one_2d_map_per_call():
    with pytest.raises(ValueError, match="one of each per attention call"):
        ExampleMaps(("a", "b"), (True,), (np.zeros((2, 2)),))
    with pytest.raises(ValueError, match="the map of a has shape"):
        ExampleMaps(("a",), (True,), (np.zeros((1, 2, 2)),))


def test_the_figure_grows_with_its_calls_and_variants():
    one = ExampleMaps(("enc.attn",), (True,), (causal_maps(0),))
    small = gallery_figure({"kv": one}, "reverse").get_size_inches()
    large = gallery_figure({"kv": hand_made(0), "qkv": hand_made(1)}, "reverse").get_size_inches()
    assert large[0] > small[0] and large[1] > small[1]


def test_long_sequences_get_no_tick_labels():
    tokens = tuple(str(i) for i in range(65))
    m = np.full((65, 65), 1 / 65)
    fig = gallery_figure({"kv": ExampleMaps(("attn",), (True,), (m,), tokens)}, "mnist")
    assert heat_axes(fig)[0].get_xticklabels() == []


# -- the maps of every family's model -------------------------------------------------------------
@pytest.fixture(scope="module")
def family_cases(tmp_path_factory):
    """{family: (hp with its data facts, inputs)} of every TINY case."""
    out = {}
    for family in TINY:
        inputs = FAMILY_INPUTS[family](tmp_path_factory.mktemp(family))
        hp = tiny_hparams(family)
        out[family] = ({**hp, **runner.experiment(family).data_facts(hp, inputs)}, inputs)
    return out


@pytest.mark.parametrize("family", list(TINY))
def test_every_family_gives_a_map_per_attention_call_whose_rows_sum_to_one(family, family_cases):
    hp, inputs = family_cases[family]
    rt = runner.experiment(family)
    torch.manual_seed(0)
    model = rt.build_model(hp)
    got = example_maps(model, hp, inputs)
    modules = [n for n, m in model.named_modules() if isinstance(m, SelfAttention)]
    assert set(got.names) == set(modules)  # every attention module, each once here
    assert len(got.names) == len(modules)
    for name, is_self, m in zip(got.names, got.is_self, got.maps):
        assert m.ndim == 2 and m.size > 0, name
        if is_self:
            assert m.shape[0] == m.shape[1], name
        assert np.isfinite(m).any(1).all(), f"{name}: a query with every key masked"
        np.testing.assert_allclose(np.nansum(m, 1), 1.0, atol=1e-5, err_msg=name)


def test_causal_families_blank_the_future(family_cases):
    for family in ("human_numbers", "charlm"):
        hp, inputs = family_cases[family]
        m = example_maps(runner.experiment(family).build_model(hp), hp, inputs).maps[0]
        future = np.triu(np.ones(m.shape, dtype=bool), 1)
        assert np.isnan(m[future]).all() and np.isfinite(m[~future]).all(), family


def test_translation_drops_the_padding_of_source_and_target(family_cases):
    from kvt.data.tokenizer import PAD

    hp, inputs = family_cases["translation"]
    rt = runner.experiment("translation")
    src, tgt_in, _ = first_example(next(iter(rt.eval_data(hp, "test", inputs)())))
    n_src, n_tgt = int((src != PAD).sum()), int((tgt_in != PAD).sum())
    assert n_src < src.shape[1] or n_tgt < tgt_in.shape[1], "the fixture example is unpadded"
    got = example_maps(rt.build_model(hp), hp, inputs)
    shapes = dict(zip(got.names, (m.shape for m in got.maps)))
    assert shapes == {
        "encoder.0.attn": (n_src, n_src),
        "decoder.0.self_attn": (n_tgt, n_tgt),
        "decoder.0.cross_attn": (n_tgt, n_src),
    }
    assert got.is_self == (True, True, False)


def test_call_maps_blank_masked_scores_and_average_the_heads():
    from kvt.attention import build_attention, make_mask
    from kvt.attention_record import recording

    torch.manual_seed(0)
    attn = build_attention("kv", 8, 2).eval()
    x = torch.randn(2, 4, 8)
    pad = torch.tensor([[False, False, True, False], [False] * 4])
    with torch.no_grad(), recording(attn) as calls:
        attn(x, mask=make_mask(4, key_padding=pad))
    ((name, is_self, m),) = call_maps(calls)
    # key 2 is masked for every query: padding, dropped from both axes of a self-attention map
    expected = calls[0].maps[0].mean(0).numpy()[[0, 1, 3]][:, [0, 1, 3]]
    assert is_self and m.shape == (3, 3)
    np.testing.assert_allclose(m, expected, rtol=1e-6)


def test_first_example_needs_a_tuple_of_tensors_with_one_batch_size():
    x, y = torch.zeros(5, 3), torch.ones(5)
    assert [t.shape for t in first_example((x, y))] == [(1, 3), (1,)]
    with pytest.raises(TypeError, match="a tuple of tensors"):
        first_example({"x": x})
    with pytest.raises(ValueError, match=r"differ in batch size: \[4, 5\]"):
        first_example((x, y[:4]))


# -- token labels ---------------------------------------------------------------------------------
def test_synthetic_labels_are_the_example_digits(family_cases):
    hp, inputs = family_cases["synthetic"]
    rt = runner.experiment("synthetic")
    example = first_example(next(iter(rt.eval_data(hp, "test", inputs)())))
    tokens = rt.example_tokens(hp, inputs, example)
    assert tokens == [str(d) for d in example[0][0].tolist()]
    assert len(tokens) == hp["seq_len"]


def test_human_numbers_labels_are_the_example_words(family_cases):
    hp, inputs = family_cases["human_numbers"]
    rt = runner.experiment("human_numbers")
    example = first_example(next(iter(rt.eval_data(hp, "test", inputs)())))
    tokens = rt.example_tokens(hp, inputs, example)
    assert len(tokens) == hp["seq_len"] == example[0].shape[1]
    words = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "."}
    assert set(tokens) <= words | {"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
                                   "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
                                   "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
                                   "ninety", "hundred", "thousand"}  # fmt: skip
    assert example_maps(runner.experiment("human_numbers").build_model(hp), hp, inputs).tokens


@pytest.mark.parametrize("family", [f for f in TINY if f not in ("synthetic", "human_numbers")])
def test_other_families_give_no_labels(family, family_cases):
    hp, inputs = family_cases[family]
    rt = runner.experiment(family)
    example = first_example(next(iter(rt.eval_data(hp, "test", inputs)())))
    assert rt.example_tokens(hp, inputs, example) is None


# -- the job --------------------------------------------------------------------------------------
class Named(dict):
    """Snakemake's named inputs, params and outputs: attributes and dict methods."""

    __getattr__ = dict.__getitem__


def test_gallery_job_draws_each_variant_and_refuses_another_runs_weights(tmp_path, one_thread):
    models, hparams = [], []
    for attention in ("qkv", "kv"):
        hp = tiny_hparams("synthetic", attention=attention)
        runner.train(hp, tmp_path / attention, tmp_path / attention / "model.pt", CPU)
        models.append(str(tmp_path / attention / "model.pt"))
        hparams.append(hp)

    def job(hparams):
        return SimpleNamespace(
            rule="attention_gallery",
            threads=1,
            config={},
            input=Named(models=models),
            params=Named(device="cpu", hparams=hparams),
            output=Named(png=str(tmp_path / "g.png"), pdf=str(tmp_path / "g.pdf")),
            wildcards=Named(task="reverse"),
        )

    gallery_job(job(hparams))
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "g.pdf").exists()
    with pytest.raises(RuntimeError, match="belongs to another run"):
        gallery_job(job(hparams[::-1]))


# -- the rule -------------------------------------------------------------------------------------
def dry_run(tmp_path, *config, targets=()):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1"]
    cmd += ["--config", f"results={tmp_path}/results", *config, "--", *targets]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_gallery_is_scheduled_for_the_first_task_of_every_family(tmp_path):
    res = dry_run(tmp_path, "preset=smoke")
    assert res.returncode == 0, res.stderr + res.stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", res.stdout + res.stderr, flags=re.M))
    assert int(counts["attention_gallery"]) == len(FAMILIES)
    # a task the listed families of its group lack: refused while the DAG is built
    res = dry_run(
        tmp_path,
        "preset=smoke",
        "families=[charlm]",
        targets=[f"{tmp_path}/results/figures/nlp/gallery_multi30k_en_de.png"],
    )
    assert res.returncode != 0
    assert "wildcard task='multi30k_en_de'" in res.stdout + res.stderr


def test_ci_expects_the_gallery_of_every_families_first_task():
    from kvt.config import load_config, parse_overrides
    from kvt.expect import outputs

    config = load_config(parse_overrides(["preset=smoke"]), ROOT)
    files = outputs(config)
    for name in config["families"]:
        group, first = FAMILIES[name].report_group, config[name]["tasks"][0]
        assert f"figures/{group}/gallery_{first}.png" in files, name
    assert len([f for f in files if "/gallery_" in f]) == len(config["families"])
