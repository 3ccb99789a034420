"""Human Numbers (kvt.data.human_numbers, kvt.experiments.human_numbers): fastai's files exactly,
the notebook's token stream, vocabulary and sequences (its printed counts), and the notebook's
model (tied embeddings, its normalised residuals, causal)."""

import math

import pytest
import torch
from conftest import tiny_hparams
from kvt import runner
from kvt.data import human_numbers as hn
from kvt.data.facts import FACTS
from kvt.families import family
from kvt.families.base import ConfigError
from kvt.limits import config_limits

# What numbers_pos.ipynb (and fastbook's chapter 12, on the same archive) print.
NOTEBOOK_LINES = 9998
NOTEBOOK_TOKENS = 63095
NOTEBOOK_VOCAB_HEAD = ["one", ".", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NOTEBOOK_3GRAMS = 21031  # L((tokens[i:i+3], tokens[i+3]) for i in range(0,len(tokens)-4,3))
NOTEBOOK_THOUSAND = 0.15165200855716662  # the share of "thousand" among its validation targets


def test_files_are_fastais_line_for_line(tmp_path):
    train, valid = hn.write_files(tmp_path)
    tr = train.read_text().splitlines(keepends=True)
    va = valid.read_text().splitlines(keepends=True)
    assert len(tr) + len(va) == NOTEBOOK_LINES and (len(tr), len(va)) == (7999, 1999)
    assert tr[:3] == ["one \n", "two \n", "three \n"]
    assert tr[-1] == "seven thousand nine hundred ninety nine \n"
    assert va[0] == "eight thousand one \n"
    assert va[-1] == "nine thousand nine hundred ninety nine \n"
    assert train.read_bytes().endswith(b" \n") and b"-" not in train.read_bytes()


@pytest.mark.parametrize(
    "n, text",
    [
        (1, "one"),
        (13, "thirteen"),
        (20, "twenty"),
        (21, "twenty one"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (1000, "one thousand"),
        (4321, "four thousand three hundred twenty one"),
        (7010, "seven thousand ten"),
        (9999, "nine thousand nine hundred ninety nine"),
    ],
)
def test_spelling_has_no_hyphen_and_no_and(n, text):
    assert hn.words(n) == text


@pytest.mark.parametrize("n", [0, 10000, -3])
def test_numbers_outside_the_dataset_are_refused(n):
    with pytest.raises(ValueError, match="1 to 9,999"):
        hn.words(n)


def test_token_stream_and_vocabulary_are_the_notebooks():
    vocab, ids = hn.token_ids()
    stream = hn.tokens()
    assert len(stream) == len(ids) == NOTEBOOK_TOKENS == FACTS["human_numbers"].tokens
    assert list(vocab[:10]) == NOTEBOOK_VOCAB_HEAD and vocab[-2:] == ("hundred", "thousand")
    assert vocab == FACTS["human_numbers"].vocabulary and len(vocab) == 30
    assert stream[:4] == ["one", ".", "two", "."] and stream[-1] == "nine"
    assert ids[:10] == [0, 1, 2, 1, 3, 1, 4, 1, 5, 1]


def test_the_notebooks_baseline_share_of_thousand():
    """The notebook's 3-token dataset, cut 80/20: 'thousand' is 15.165...% of the validation
    targets, to the last digit it prints (a check of the whole stream's order)."""
    _, ids = hn.token_ids()
    seqs = [(ids[i : i + 3], ids[i + 3]) for i in range(0, len(ids) - 4, 3)]
    assert len(seqs) == NOTEBOOK_3GRAMS
    valid = seqs[int(len(seqs) * 0.8) :]
    assert sum(y == 29 for _, y in valid) / len(valid) == NOTEBOOK_THOUSAND


@pytest.mark.parametrize("seq_len", [16, 128])
def test_sequences_are_the_notebooks_cut(seq_len):
    _, ids = hn.token_ids()
    parts = hn.sequences(ids, seq_len)
    n = len(range(0, len(ids) - seq_len - 1, seq_len))
    (xt, yt), (xv, yv) = parts["train"], parts["valid"]
    assert len(xt) == int(n * 0.8) and len(xt) + len(xv) == n
    assert (len(xt), len(xv)) == FACTS["human_numbers"].split_sizes(seq_len)
    assert xt[0] == ids[:seq_len] and yt[0] == ids[1 : seq_len + 1]
    assert xv[0] == ids[len(xt) * seq_len : (len(xt) + 1) * seq_len]
    assert all(len(x) == seq_len for x in xv) and yv[-1][-1] == ids[n * seq_len]


def test_batch_size_limit_is_the_training_sequences_at_the_longest_length():
    fam = family("human_numbers")
    section = {**fam.defaults(), "batch_size": 64}
    (limit,) = config_limits({"human_numbers": section})
    assert limit.bound == FACTS["human_numbers"].split_sizes(128)[0] == 393
    assert not limit.broken
    section = {**section, "batch_size": 394}
    (limit,) = config_limits({"human_numbers": section})
    assert limit.broken and "seq_len=128" in limit.message()


def test_odd_width_or_heads_not_dividing_it_are_refused():
    fam = family("human_numbers")
    with pytest.raises(ConfigError, match="not divisible by heads=3"):
        fam.check({**fam.defaults(), "heads": 3})
    with pytest.raises(ConfigError, match="odd"):
        fam.check({**fam.defaults(), "d_model": 7, "heads": 7})


# -- the model -----------------------------------------------------------------------------------
def _model(attention="kv_pos", **overrides):
    hp = {**tiny_hparams("human_numbers"), "attention": attention, **overrides}
    rt = runner.experiment("human_numbers")
    return rt.build_model({**hp, **rt.bench_facts(hp)}), hp


def test_embeddings_are_tied_and_the_table_is_sines_then_cosines():
    model, hp = _model()
    assert model.head.weight is model.embedding.weight
    d = hp["d_model"]
    table = model.pos_table
    assert table.shape == (hp["seq_len"], d)
    freq = 1 / 10000 ** (2 * 1 / d)  # the second frequency
    assert math.isclose(table[3, 1].item(), math.sin(3 * freq), rel_tol=1e-6)
    assert math.isclose(table[3, d // 2 + 1].item(), math.cos(3 * freq), rel_tol=1e-6)


@pytest.mark.parametrize("attention", ["qkv", "kv", "kv_pos"])
def test_the_model_is_causal(attention):
    """Changing a later token changes no earlier position's logits."""
    torch.manual_seed(0)
    model, hp = _model(attention)
    model.eval()
    x = torch.randint(30, (2, hp["seq_len"]))
    y = x.clone()
    y[:, 5] = (y[:, 5] + 1) % 30
    a, b = model(x), model(y)
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])


def test_a_layer_adds_its_output_to_the_normalised_input():
    """The notebook's residual: with the attention's and the feed-forward's output projections
    zeroed, a layer returns LN2(LN1(x)), not x."""
    model, hp = _model("qkv", attn_out_dropout=0.0, ff_dropout=0.0)
    layer = model.layers[0]
    with torch.no_grad():
        layer.attn.out_proj.weight.zero_()
        layer.ff[2].weight.zero_()
        layer.ff[2].bias.zero_()
    x = torch.randn(2, hp["seq_len"], hp["d_model"]) * 3 + 1
    assert torch.allclose(layer(x), layer.ff_norm(layer.attn_norm(x)), atol=1e-6)


def test_xavier_init_covers_map_pos_as_the_notebook():
    """init xavier: every matrix of a layer xavier-uniform, kv_pos's map_pos weight too (its
    bound sqrt(6 / 11) exceeds PyTorch's default 1 / sqrt(10)); torch leaves map_pos alone."""
    torch.manual_seed(0)
    xav, _ = _model("kv_pos", init="xavier", depth=4)
    maps = torch.cat([layer.attn.map_pos.weight.flatten() for layer in xav.layers])
    assert maps.abs().max() > 1 / math.sqrt(10) and maps.abs().max() <= math.sqrt(6 / 11)
    torch.manual_seed(0)
    default, _ = _model("kv_pos", init="torch", depth=4)
    maps = torch.cat([layer.attn.map_pos.weight.flatten() for layer in default.layers])
    assert maps.abs().max() <= 1 / math.sqrt(10)


def test_tables_keep_the_learning_rate_axis_a_float():
    """lr is a float grid axis: the by-configuration table shows 0.0001, not 0 (integer axes such
    as seq_len stay integers)."""
    import pandas as pd
    from kvt.report import tables

    rows = [
        {
            "family": "human_numbers",
            "task": "numbers",
            "cfg": f"lr{lr}-n{n}",
            "attention": a,
            "seed": s,
            "lr": lr,
            "seq_len": float(n),
            "test_acc": 0.5 + s / 10,
        }
        for lr, n in ((0.001, 16), (0.0001, 32))
        for a in ("qkv", "kv")
        for s in range(2)
    ]
    table = tables.by_config_table(pd.DataFrame(rows), "human_numbers")
    assert sorted(set(table["lr"])) == [0.0001, 0.001] and table["seq_len"].dtype.kind == "i"
    md = tables.by_config_markdown(table, family("human_numbers"))
    assert "| lr0.0001-n32 | 0.0001 | 32 |" in md and "| lr0.001-n16 | 0.001 | 16 |" in md
