"""Sizes the data cannot hold: the datasets' facts (kvt.data.facts) against the real files where
they can be reached, every family's limits refused before any job with the setting named, each
bound exactly what the data code accepts, and the data rules refusing what their files (fixtures
here) cannot hold."""

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from kvt.config import ConfigError, load_config
from kvt.data import text, vision
from kvt.data.facts import FACTS, ImageFacts, char_split
from kvt.data.set_anomaly import SetSampler, balanced_holdout, make_sets
from kvt.families.anomaly import subset_limits
from kvt.limits import check_measured, config_limits

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
MIRROR = next(
    (
        root
        for root in (ROOT.parent / "shared/data/mirror", Path("/work/shared/data/mirror"))
        if (root / "SHA256SUMS").is_file()
    ),
    None,
)
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="offline mirror shared/data/mirror absent")


def resolved(**overrides) -> dict:
    return load_config(overrides, root=ROOT)


def refused(**overrides) -> str:
    with pytest.raises(ConfigError) as err:
        resolved(**overrides)
    return str(err.value)


# -- the facts against the files ----------------------------------------------------------------
def _idx(path: Path) -> tuple[int, np.ndarray | None]:
    """(item count of the IDX header, the labels if a label file)."""
    data = gzip.open(path).read()
    magic, count = struct.unpack(">ii", data[:8])
    return count, np.frombuffer(data[8:], np.uint8) if magic == 0x801 else None


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"{FASHION} absent")
def test_fashion_mnist_facts_are_the_archives_headers_and_labels():
    facts = FACTS["fashion_mnist"]
    for prefix, per_class in (("train", facts.train_per_class), ("t10k", facts.test_per_class)):
        images, _ = _idx(FASHION / f"{prefix}-images-idx3-ubyte.gz")
        count, labels = _idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz")
        assert images == count == sum(per_class)
        assert tuple(np.bincount(labels, minlength=facts.classes)) == per_class


@needs_mirror
def test_text_facts_are_the_mirrors_files():
    play = text.measure("shakespeare", MIRROR)
    assert (play.characters, play.vocabulary) == (
        FACTS["shakespeare"].characters,
        FACTS["shakespeare"].vocabulary,
    )
    _, train, val = text.char_splits(text.read_shakespeare(MIRROR))
    assert (len(train), len(val)) == (play.train_chars, play.val_chars)
    pairs = text.measure("multi30k", MIRROR)
    declared = FACTS["multi30k"]
    assert (pairs.train, pairs.val, pairs.test) == (declared.train, declared.val, declared.test)


@needs_mirror
@pytest.mark.slow
def test_multi30k_min_vocab_is_sentencepieces_bound(tmp_path):
    """A piece per character and the specials: min_vocab pieces train, one fewer is refused;
    the data rule's measure finds the same bound."""
    from kvt.data.tokenizer import train_tokenizer

    train = text.read_pairs(MIRROR, "train", "de", "en")
    sentences = [s for s, _ in train] + [t for _, t in train]
    bound = FACTS["multi30k"].min_vocab
    assert text.measure("multi30k", MIRROR).min_vocab == bound
    assert train_tokenizer(sentences, bound, tmp_path / "min.model").vocab_size == bound
    with pytest.raises(ValueError, match=f"vocab_size={bound - 1} is too small"):
        train_tokenizer(sentences, bound - 1, tmp_path / "under.model")


def test_multi30k_max_vocab_is_sentencepieces_bound(tmp_path):
    """The tokenizer rule's corpus fills max_vocab pieces and refuses one more."""
    from kvt.data.tokenizer import train_tokenizer

    train = text.read_pairs(MIRROR, "train", "de", "en")
    sentences = [s for s, _ in train] + [t for _, t in train]
    bound = FACTS["multi30k"].max_vocab
    assert train_tokenizer(sentences, bound, tmp_path / "max.model").vocab_size == bound
    with pytest.raises(ValueError, match=f"<= {bound}"):
        train_tokenizer(sentences, bound + 1, tmp_path / "over.model")


def test_digits_facts_are_the_split_kvt_makes():
    assert vision.measure("digits", None) == FACTS["digits"]
    assert vision.DIGITS_TEST == FACTS["digits"].test


def test_measure_counts_the_files_the_data_rule_wrote(tmp_path):
    for name, classes in (("mnist", 10), ("cifar100", 100)):
        vision.prepare(name, tmp_path, download_missing=False, fixtures=True)
        got = vision.measure(name, tmp_path)
        from kvt.data.image_fixtures import image_counts

        assert (got.train, got.test, got.classes) == (*image_counts(name), classes)


def test_char_split_is_the_one_char_splits_makes():
    _, train, val = text.char_splits("abcdefghij" * 7)  # 70 characters
    assert (len(train), len(val)) == (char_split(70), 70 - char_split(70)) == (63, 7)


# -- refused before any job, the setting named ------------------------------------------------
@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"vision": {"mnist": {"val_size": 60000}}}, "vision.mnist.val_size=60000 is more than "
         "mnist allows: at most 59999"),
        ({"vision": {"cifar10": {"val_size": 5000, "train_size": 45001}}},
         "vision.cifar10.train_size=45001 is more than cifar10 allows: at most 45000"),
        ({"vision": {"cifar100": {"test_size": 10001}}}, "vision.cifar100.test_size=10001"),
        ({"vision": {"fashion_mnist": {"train_size": 300, "batch_size": 301}}},
         "vision.fashion_mnist.batch_size=301 is more than fashion_mnist allows: at most 300"),
        ({"vision": {"tasks": ["digits"], "digits": {"val_size": 1437}}},
         "vision.digits.val_size=1437"),
        ({"anomaly": {"train_images": 50001}}, "anomaly.train_images=50001"),
        ({"anomaly": {"test_images": 10001}}, "anomaly.test_images=10001"),
        ({"anomaly": {"set_size": 52}}, "anomaly.set_size=52 is more than cifar100 allows: at "
         "most 51 (a set holds set_size - 1 images of one class; the smallest class of the val"),
        ({"anomaly": {"batch_size": 45001}}, "anomaly.batch_size=45001"),
        ({"anomaly": {"train_images": 1000, "batch_size": 901}}, "anomaly.batch_size=901"),
        ({"charlm": {"shakespeare": {"block": 111540}}}, "charlm.shakespeare.block=111540 is "
         "more than shakespeare allows: at most 111539"),
        ({"translation": {"multi30k_en_de": {"vocab_size": 83575},
                          "multi30k_de_en": {"vocab_size": 83575}}},
         "translation.multi30k_en_de.vocab_size=83575 is more than multi30k allows: at most "
         "83574"),
        ({"translation": {"multi30k_en_de": {"vocab_size": 105},
                          "multi30k_de_en": {"vocab_size": 105}}},
         "translation.multi30k_de_en.vocab_size=105 is less than multi30k allows: at least "
         "106"),
        ({"translation": {"multi30k_de_en": {"val_bleu_size": 1015}}},
         "translation.multi30k_de_en.val_bleu_size=1015"),
        ({"translation": {"multi30k_en_de": {"batch_size": 29001}}},
         "translation.multi30k_en_de.batch_size=29001"),
        # a section whose family is not listed is checked all the same
        ({"families": ["synthetic"], "charlm": {"shakespeare": {"block": 200000}}},
         "charlm.shakespeare.block=200000"),
    ],
)  # fmt: skip
def test_a_size_the_data_cannot_hold_is_refused_naming_it(overrides, named):
    assert named in refused(**overrides)


def test_the_bounds_themselves_are_accepted():
    resolved(
        vision={
            "tasks": ["mnist", "digits"],
            "mnist": {"val_size": 59999, "batch_size": 1},
            "digits": {"val_size": 1000, "train_size": 437, "batch_size": 437},
        },
        anomaly={"set_size": 51, "batch_size": 45000},
        charlm={"shakespeare": {"block": 111539}},
        translation={
            "multi30k_en_de": {"vocab_size": 83574, "val_bleu_size": 1014, "batch_size": 29000},
            "multi30k_de_en": {"vocab_size": 83574},
        },
    )
    resolved(translation={t: {"vocab_size": 106} for t in ("multi30k_en_de", "multi30k_de_en")})


@pytest.mark.parametrize("preset", ["paper", "cpu", "smoke"])
def test_the_presets_fit_their_data(preset):
    config = resolved(preset=preset)
    assert not [lim for lim in config_limits(config) if lim.broken]


def test_every_setting_named_once_per_task_and_dataset():
    """Every limit names a setting of its section and a dataset with declared facts."""
    config = resolved(vision={"tasks": list(vision.DATASETS)})
    limits = config_limits(config)
    assert {lim.dataset for lim in limits} == set(FACTS)
    for lim in limits:
        family, *path = lim.setting.split(".")
        section = config[family]
        for key in path:
            section = section[key]
        assert section == lim.value


# -- each bound is what the data code accepts ---------------------------------------------------
def test_vision_bounds_are_what_load_splits_and_batches_accept(tmp_path):
    vision.prepare("mnist", tmp_path, download_missing=False, fixtures=True)
    facts = vision.measure("mnist", tmp_path)
    section = {"tasks": ["mnist"], "mnist": {"val_size": 599, "train_size": None,
                                             "test_size": 200, "batch_size": 1}}  # fmt: skip
    limits = {
        lim.setting: lim.bound for lim in config_limits({"vision": section}, {"mnist": facts})
    }
    assert limits["vision.mnist.val_size"] == 599 and limits["vision.mnist.test_size"] == 200
    split = vision.load_splits("mnist", tmp_path, val_size=599, split_seed=0, test_size=200,
                               verify=False)  # fmt: skip
    assert len(split["train"][0]) == limits["vision.mnist.batch_size"] == 1
    with pytest.raises(ValueError):
        vision.load_splits("mnist", tmp_path, val_size=600, split_seed=0, verify=False)
    with pytest.raises(ValueError):
        vision.load_splits("mnist", tmp_path, val_size=1, test_size=201, split_seed=0, verify=False)


def _subset(labels_train, labels_test) -> ImageFacts:
    count = lambda y: tuple(int(c) for c in np.bincount(y, minlength=10))  # noqa: E731
    return ImageFacts("toy", count(labels_train), count(labels_test))


@pytest.mark.parametrize("val_fraction", [0.1, 0.25, 0.5])
def test_anomaly_set_bound_is_what_the_sets_accept(val_fraction):
    """set_size at the bound draws sets from every part; one more fails in some part."""
    rng = np.random.default_rng(0)
    ytr, yte = rng.integers(0, 10, 300), rng.integers(0, 10, 120)
    section = {"set_size": 3, "batch_size": 1, "val_fraction": val_fraction}
    limits = subset_limits(section, "toy", _subset(ytr, yte))
    bound = min(lim.bound for lim in limits if lim.setting == "anomaly.set_size")
    train_idx, val_idx = balanced_holdout(ytr, val_fraction, 0)
    parts = {"train": ytr[train_idx.numpy()], "val": ytr[val_idx.numpy()], "test": yte}
    batch = next(lim.bound for lim in limits if lim.setting == "anomaly.batch_size")
    assert batch == len(parts["train"])
    for labels in parts.values():
        SetSampler(labels, bound)
        make_sets(labels, len(labels), bound, 0)
    failures = 0
    for labels in parts.values():
        try:
            SetSampler(labels, bound + 1)
        except ValueError:
            failures += 1
    assert failures >= 1


def test_charlm_bound_is_what_the_blocks_accept():
    ids = torch.arange(50)
    text.BlockBatches(ids, 49, 2, 0).batch(0)
    text.fixed_batches(ids, 49, 2, 1)
    with pytest.raises(ValueError):
        text.BlockBatches(ids, 50, 2, 0)
    limit = config_limits(
        {"charlm": {"tasks": ["shakespeare"], "shakespeare": {"block": 2}}},
        {"shakespeare": FACTS["shakespeare"].__class__("toy", 500, "ab")},
    )[0]
    assert limit.bound == 500 - char_split(500) - 1 == 49


# -- the data rules: what their files hold ------------------------------------------------------
def _job(config: dict, dataset: str, tmp_path: Path, **params):
    return SimpleNamespace(
        config=config,
        wildcards=SimpleNamespace(dataset=dataset),
        params=SimpleNamespace(
            root=config["data"]["dir"], download=False, fixtures=True, retries=1, **params
        ),
        output=SimpleNamespace(manifest=str(tmp_path / f"{dataset}.json")),
    )


def test_vision_data_rule_refuses_what_its_fixture_files_cannot_hold(tmp_path):
    """val_size 600 fits MNIST (checked before any job) but not the 600 fixture images."""
    from kvt.experiments.vision import data_job

    data = {"dir": str(tmp_path / "data"), "fixtures": True}
    ok = resolved(preset="smoke", data=data, vision={"tasks": ["mnist"]})
    data_job(_job(ok, "mnist", tmp_path))
    (tmp_path / "mnist.json").unlink()
    bad = resolved(
        preset="smoke", data=data, vision={"tasks": ["mnist"], "mnist": {"val_size": 600}}
    )
    with pytest.raises(ConfigError, match=r"vision\.mnist\.val_size=600 .* at most 599") as err:
        data_job(_job(bad, "mnist", tmp_path))
    assert "measured on the files of mnist" in str(err.value)
    assert not (tmp_path / "mnist.json").exists()  # no manifest: nothing downstream runs


def test_a_setting_changed_after_the_data_rule_is_checked_against_its_files(tmp_path):
    """The manifest records what the data rule measured: a later setting those files cannot hold
    stops before any job (a changed setting reruns no data rule), naming the setting and the
    manifest; facts survive the round trip through JSON."""
    from kvt.data.facts import from_record
    from kvt.experiments.vision import data_job
    from kvt.limits import check_prepared, manifest_path

    results = tmp_path / "results"
    data = {"dir": str(tmp_path / "data"), "fixtures": True}
    ok = resolved(preset="smoke", data=data, results=str(results), vision={"tasks": ["mnist"]})
    manifest = manifest_path(results, "mnist")
    data_job(_job(ok, "mnist", manifest.parent))
    recorded = json.loads(manifest.read_text())["facts"]
    assert from_record(recorded) == vision.measure("mnist", tmp_path / "data")
    check_prepared(ok)
    later = resolved(
        preset="smoke",
        data=data,
        results=str(results),
        vision={"tasks": ["mnist"], "mnist": {"val_size": 600}},
    )
    with pytest.raises(ConfigError, match=r"vision\.mnist\.val_size=600 .* at most 599") as err:
        check_prepared(later)
    assert str(manifest) in str(err.value)
    manifest.write_text("{}")  # a manifest without a record: left to the jobs that read it
    check_prepared(later)


def test_vision_data_rule_of_cifar100_checks_the_anomaly_sets(tmp_path):
    """Fixture CIFAR-100: 20 training images a class, val_fraction 0.5 holds out 10."""
    from kvt.experiments.vision import data_job

    data = {"dir": str(tmp_path / "data"), "fixtures": True}
    bad = resolved(preset="smoke", data=data, anomaly={"set_size": 12})
    with pytest.raises(ConfigError, match=r"anomaly\.set_size=12 .* at most 11"):
        data_job(_job(bad, "cifar100", tmp_path))


def test_text_data_rule_refuses_a_block_longer_than_its_fixture_text(tmp_path):
    from kvt.experiments.text_data import text_data_job

    data = {"dir": str(tmp_path / "data"), "fixtures": True}
    config = resolved(preset="smoke", data=data, charlm={"shakespeare": {"block": 801}})
    with pytest.raises(ConfigError, match=r"charlm\.shakespeare\.block=801 .* at most 800"):
        text_data_job(_job(config, "shakespeare", tmp_path, base=str(tmp_path)))
    assert text.measure("shakespeare", tmp_path / "data").val_chars == 801  # of 8,003
    config = resolved(
        preset="smoke",
        data=data,
        translation={
            "multi30k_en_de": {"val_bleu_size": 61},
            "multi30k_de_en": {"batch_size": 401},
        },
    )
    with pytest.raises(ConfigError) as err:
        text_data_job(_job(config, "multi30k", tmp_path, base=str(tmp_path)))
    assert "translation.multi30k_en_de.val_bleu_size=61" in str(err.value)
    assert "translation.multi30k_de_en.batch_size=401" in str(err.value)
    # the fixture pairs' characters need 45 pieces with the specials (the real corpus: 106,
    # which the check before any job holds every value to: set past it here)
    config = resolved(preset="smoke", data=data)
    for task in ("multi30k_en_de", "multi30k_de_en"):
        config["translation"][task]["vocab_size"] = 44
    with pytest.raises(ConfigError, match=r"multi30k_en_de\.vocab_size=44 is less .* at least 45"):
        text_data_job(_job(config, "multi30k", tmp_path, base=str(tmp_path)))


def test_feature_rule_checks_the_subsets_it_drew():
    """train_images: a subset whose classes are known only once drawn."""
    from kvt.experiments.anomaly import check_subsets

    y = torch.arange(2000) % 100
    images = {"train": (None, y[:1000]), "test": (None, y[:1000])}  # 10 a class
    section = resolved(preset="smoke")["anomaly"]  # val_fraction 0.5: 5 a class held out
    with pytest.raises(ConfigError, match=r"anomaly\.set_size=10 .* at most 6 .*val part"):
        check_subsets(section, "cifar100", images)
    check_subsets({**section, "set_size": 6}, "cifar100", images)


def test_check_measured_looks_only_at_its_dataset():
    config = resolved(preset="smoke")
    tiny = ImageFacts("tiny", (1,) * 10, (1,) * 10)
    check_measured(config, "cifar10", FACTS["cifar10"])
    with pytest.raises(ConfigError, match="vision.mnist"):
        check_measured(config, "mnist", tiny)


# -- through Snakemake --------------------------------------------------------------------------
def _snakemake(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow/Snakefile"),
           "--configfile", str(ROOT / "config.yaml"), "--directory", str(tmp_path),
           "--cores", "1", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_dry_run_stops_before_any_job_naming_the_setting(tmp_path):
    res = _snakemake(tmp_path, "-n", "--config", "vision={mnist: {val_size: 70000}}")
    assert res.returncode != 0
    assert "vision.mnist.val_size=70000 is more than mnist allows" in res.stdout + res.stderr


@pytest.mark.slow
def test_the_data_rule_refuses_through_snakemake(tmp_path):
    """The data rule refuses what its fixture files cannot hold; once it has run, a dry run with
    such a setting stops before any job (its manifest records what the files hold)."""
    target, smoke = "results/data/mnist.json", ["preset=smoke", "vision={tasks: [mnist]}"]
    bad = ["preset=smoke", "vision={tasks: [mnist], mnist: {val_size: 650}}"]
    res = _snakemake(tmp_path, target, "--config", *bad)
    out = (
        res.stdout
        + res.stderr
        + "".join(p.read_text() for p in (tmp_path / "results/logs/data").glob("*.log"))
    )
    assert res.returncode != 0
    assert "vision.mnist.val_size=650 is more than mnist allows: at most 599" in out
    assert not (tmp_path / target).exists()
    assert _snakemake(tmp_path, target, "--config", *smoke).returncode == 0
    res = _snakemake(tmp_path, "-n", "--config", *bad)
    assert res.returncode != 0
    assert "vision.mnist.val_size=650 is more than mnist allows" in res.stdout + res.stderr
    assert "results/data/mnist.json" in res.stdout + res.stderr


def test_tokenizer_rule_names_the_vocabulary_its_corpus_cannot_fill(tmp_path):
    """Files whose largest vocabulary only SentencePiece knows (here the fixture pairs): the
    tokenizer rule's error names the setting."""
    from kvt.experiments.text_data import text_fixture_inputs
    from kvt.experiments.translation import tokenizer_job

    job = SimpleNamespace(
        input=text_fixture_inputs("multi30k", tmp_path),
        params=SimpleNamespace(vocab_size=5000),
        output=SimpleNamespace(model=str(tmp_path / "tok.model")),
        config=resolved(preset="smoke"),
    )
    with pytest.raises(ValueError, match=r"translation\.multi30k_en_de\.vocab_size, .*too large"):
        tokenizer_job(job)
    assert not (tmp_path / "tok.model").exists()
