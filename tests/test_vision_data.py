"""kvt.data.vision: fixture files round-trip through torchvision's readers, seeded splits, clear
errors for missing/corrupt files and failed downloads, batched augmentation, resumable batches.
No network: downloads are monkeypatched to fail (or to write fixtures) like an offline machine."""

import os
import pickle

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
import torchvision.transforms.v2.functional as TF
from kvt.data import acquire
from kvt.data import image_fixtures as FX
from kvt.data import vision as V

FILE_SETS = ["mnist", "fashion_mnist", "cifar10", "cifar100"]
N_TRAIN, N_TEST = 120, 40


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in FILE_SETS:
        FX.write_image_fixture(name, root, n_train=N_TRAIN, n_test=N_TEST, seed=3)
    return root


def _split_indices(n, val_size, seed):
    """(train, val) indices as load_splits draws them from a generator seeded with `seed`."""
    return V._split_indices(n, val_size, torch.Generator().manual_seed(seed), None)


def _fresh(tmp_path, name):
    root = tmp_path / "data"
    FX.write_image_fixture(name, root, n_train=N_TRAIN, n_test=N_TEST, seed=3)
    return root


# ---------------------------------------------------------------- files and loading


@pytest.mark.parametrize("name", FILE_SETS)
def test_fixture_round_trip(data_root, name):
    spec = V.DATASETS[name]
    xtr, ytr, xte, yte = FX.fixture_arrays(name, N_TRAIN, N_TEST, seed=3)
    s = V.load_splits(name, data_root, val_size=20, split_seed=5, verify=False)
    train_idx, val_idx = _split_indices(N_TRAIN, 20, 5)
    shape = (spec.channels, spec.image_size, spec.image_size)
    for split, (x, y), (ex, ey) in (
        ("train", s["train"], (xtr[train_idx], ytr[train_idx])),
        ("val", s["val"], (xtr[val_idx], ytr[val_idx])),
        ("test", s["test"], (xte, yte)),
    ):
        assert x.dtype == torch.uint8 and y.dtype == torch.int64, split
        assert x.shape == (len(ey),) + shape, split
        assert 0 <= int(y.min()) and int(y.max()) < spec.classes
        assert torch.equal(x, torch.from_numpy(ex)), split
        assert torch.equal(y, torch.from_numpy(ey)), split
    assert len(s["train"][1]) == N_TRAIN - 20 and len(s["test"][1]) == N_TEST


def test_torchvision_reads_the_files(data_root, monkeypatch):
    calls = []
    read = tvd.mnist.read_image_file
    monkeypatch.setattr(tvd.mnist, "read_image_file", lambda p: calls.append(p) or read(p))
    load_meta = tvd.CIFAR10._load_meta
    monkeypatch.setattr(
        tvd.CIFAR10, "_load_meta", lambda self: calls.append(type(self)) or load_meta(self)
    )
    V.load_splits("fashion_mnist", data_root, val_size=10, split_seed=0)
    V.load_splits("cifar100", data_root, val_size=10, split_seed=0, verify=False)
    assert [os.path.basename(c) for c in calls[:2]] == [
        "train-images-idx3-ubyte",
        "t10k-images-idx3-ubyte",
    ]
    assert "FashionMNIST" in calls[0]
    assert all(issubclass(c, tvd.CIFAR100) for c in calls[2:]) and len(calls) == 4


def test_cifar_pickles_have_python2_string_keys(data_root):
    with open(data_root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert set(entry) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (N_TRAIN // 5, 3072)
    with open(data_root / "cifar-100-python" / "meta", "rb") as f:
        assert set(pickle.load(f, encoding="bytes")) == {b"fine_label_names", b"coarse_label_names"}


def test_idx_headers(data_root):
    raw = (data_root / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()
    assert np.frombuffer(raw[:16], ">i4").tolist() == [2051, N_TRAIN, 28, 28]
    labels = (data_root / "MNIST/raw/t10k-labels-idx1-ubyte").read_bytes()
    assert np.frombuffer(labels[:8], ">i4").tolist() == [2049, N_TEST] and len(labels) == 8 + N_TEST


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_verify_checks_md5(data_root, name):
    with pytest.raises(V.DataCorruptError, match="md5") as e:
        V.load_splits(name, data_root, val_size=10, split_seed=0, verify=True)
    assert str(data_root / V.DATASETS[name].files[0]) in str(e.value)
    assert (
        len(V.load_splits(name, data_root, val_size=10, split_seed=0, verify=False)["val"][0]) == 10
    )


def test_sizes_take_seeded_subsets(data_root):
    a = V.load_splits("mnist", data_root, val_size=10, split_seed=1, train_size=30, test_size=15)
    b = V.load_splits("mnist", data_root, val_size=10, split_seed=1, train_size=30, test_size=15)
    full = V.load_splits("mnist", data_root, val_size=10, split_seed=1)
    assert [len(a[k][0]) for k in ("train", "val", "test")] == [30, 10, 15]
    assert all(torch.equal(a[k][0], b[k][0]) for k in a)
    assert torch.equal(a["val"][0], full["val"][0])  # the subset does not move val
    with pytest.raises(ValueError, match="train_size"):
        V.load_splits("mnist", data_root, val_size=10, split_seed=1, train_size=N_TRAIN)


def test_split_indices():
    tr, va = _split_indices(100, 15, 4)
    assert len(va) == 15 and len(tr) == 85
    assert sorted(torch.cat((tr, va)).tolist()) == list(range(100))  # disjoint and covering
    assert all(torch.equal(a, b) for a, b in zip((tr, va), _split_indices(100, 15, 4)))
    assert not torch.equal(va, _split_indices(100, 15, 5)[1])
    with pytest.raises(ValueError):
        _split_indices(10, 10, 0)


def test_missing_files_error_names_them(tmp_path):
    root = _fresh(tmp_path, "cifar10")
    for f in ("data_batch_3", "batches.meta"):
        (root / "cifar-10-batches-py" / f).unlink()
    assert V.missing_files("cifar10", root) == [
        root / "cifar-10-batches-py/data_batch_3",
        root / "cifar-10-batches-py/batches.meta",
    ]
    with pytest.raises(V.DataMissingError) as e:
        V.load_splits("cifar10", root, val_size=10, split_seed=0, verify=False)
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for part in (
        "cifar10",
        "data_batch_3",
        "batches.meta",
        str(root),
        "data rule",
        "data.download: true",
        "copy",
    ):
        assert part in msg
    assert "data_batch_1" not in msg
    assert f"python -m kvt.data.acquire stage cifar10 FOLDER --root {root}" in msg
    with pytest.raises(V.DataMissingError, match="4 file"):
        V.check_files("mnist", tmp_path / "empty")


def test_truncated_idx_names_the_file(tmp_path):
    root = _fresh(tmp_path, "mnist")
    path = root / "MNIST/raw/t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(V.DataCorruptError, match="t10k-images-idx3-ubyte"):
        V.load_splits("mnist", root, val_size=10, split_seed=0)


def test_broken_pickle_names_the_file(tmp_path):
    root = _fresh(tmp_path, "cifar100")
    (root / "cifar-100-python/train").write_bytes(b"not a pickle")
    with pytest.raises(V.DataCorruptError, match="cifar-100-python/train"):
        V.load_splits("cifar100", root, val_size=10, split_seed=0, verify=False)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="known: mnist"):
        V.missing_files("svhn", ".")


def test_digits():
    s = V.load_splits("digits", "/nonexistent", val_size=200, split_seed=0)
    assert sum(len(y) for _, y in s.values()) == 1797
    assert s["train"][0].shape[1:] == (1, 8, 8) and s["train"][0].dtype == torch.uint8
    assert int(s["train"][0].max()) == 255 and len(s["test"][1]) == V.DIGITS_TEST
    other = V.load_splits("digits", "/nonexistent", val_size=200, split_seed=1)
    assert torch.equal(s["test"][0], other["test"][0]) and not torch.equal(
        s["val"][0], other["val"][0]
    )
    # the spec's constants are the statistics of the fixed training images (train + val)
    x = torch.cat((s["train"][0], s["val"][0])).float() / 255
    spec = V.DATASETS["digits"]
    assert abs(x.mean().item() - spec.mean[0]) < 1e-3 and abs(x.std().item() - spec.std[0]) < 1e-3
    assert (
        spec.image_size // spec.patch == 4
        and FX.write_image_fixture("digits", "/nonexistent") == []
    )


# ---------------------------------------------------------------- download


def _offline(partial_name):
    """A torchvision download_and_extract_archive that writes part of a file, then fails."""

    def fake(url, download_root, *args, **kwargs):
        os.makedirs(download_root, exist_ok=True)
        with open(os.path.join(download_root, partial_name), "wb") as f:
            f.write(b"\x00" * 10)
        raise OSError("[Errno 101] Network is unreachable")

    return fake


@pytest.mark.parametrize(
    "name,module,partial",
    [
        ("mnist", tvd.mnist, "train-images-idx3-ubyte"),
        ("cifar100", tvd.cifar, "cifar-100-python.tar.gz"),
    ],
)
def test_download_offline_leaves_nothing(tmp_path, monkeypatch, name, module, partial):
    monkeypatch.setattr(module, "download_and_extract_archive", _offline(partial))
    sleeps = []
    monkeypatch.setattr(acquire.time, "sleep", sleeps.append)
    root = tmp_path / "data"
    with pytest.raises(RuntimeError) as e:
        V.download(name, root, retries=3, wait=2.0)
    msg = str(e.value)
    for part in (name, "Network is unreachable", str(root), *V.DATASETS[name].files):
        assert part in msg
    assert sleeps == [2.0, 2.0]
    assert list(tmp_path.rglob("*")) in ([], [root])  # no partial file, no temporary folder


def test_download_places_only_missing_files(tmp_path, monkeypatch):
    root = _fresh(tmp_path, "mnist")
    kept = root / "MNIST/raw/train-labels-idx1-ubyte"
    kept.write_bytes(kept.read_bytes())  # present files must survive untouched
    before = kept.stat().st_mtime_ns
    (root / "MNIST/raw/t10k-images-idx3-ubyte").unlink()

    def fake(url, download_root, *args, **kwargs):  # an "online" torchvision: writes the fixture
        tmp_root = os.path.dirname(os.path.dirname(download_root))  # <tmp>/MNIST/raw -> <tmp>
        FX.write_image_fixture("mnist", tmp_root, n_train=N_TRAIN, n_test=N_TEST, seed=9)

    monkeypatch.setattr(tvd.mnist, "download_and_extract_archive", fake)
    assert V.download("mnist", root) == [root / "MNIST/raw/t10k-images-idx3-ubyte"]
    assert kept.stat().st_mtime_ns == before and V.missing_files("mnist", root) == []
    assert torch.equal(
        V.load_splits("mnist", root, val_size=10, split_seed=0)["test"][0],
        torch.from_numpy(FX.fixture_arrays("mnist", N_TRAIN, N_TEST, seed=9)[2]),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # temporary folder gone
    monkeypatch.setattr(tvd.mnist, "download_and_extract_archive", _offline("x"))
    assert V.download("mnist", root) == []  # nothing missing: no download attempted


# ---------------------------------------------------------------- augmentation and batches


def _images(n=6, c=3, s=32, seed=0):
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed))


def test_augment_shape_changes_and_determinism():
    x = _images()
    a = V.augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert not torch.allclose(a, x, atol=1e-3)
    assert torch.equal(a, V.augment(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, V.augment(x, torch.Generator().manual_seed(2)))


def test_augment_identity_without_crop_or_flip():
    x = _images()
    out = V.augment(
        x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0
    )
    assert torch.allclose(out, x, atol=1e-5)
    flipped = V.augment(
        x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0
    )
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)


def test_resized_crop_matches_torchvision():
    x = _images(n=8)
    boxes = V._sample_boxes(8, 32, 32, torch.Generator().manual_seed(3), (0.8, 1.0), (0.9, 1.1))
    top, left, h, w = boxes
    assert bool(((h <= 32) & (w <= 32) & (h * w >= 0.8 * 1024 * 0.95)).all())
    assert len(set(zip(top.tolist(), left.tolist(), h.tolist(), w.tolist()))) > 1
    flip = torch.tensor([True, False] * 4)
    out = V._resized_crop(x, boxes, flip)
    for b in range(8):
        ref = TF.resized_crop(
            x[b],
            int(top[b]),
            int(left[b]),
            int(h[b]),
            int(w[b]),
            [32, 32],
            interpolation=TF.InterpolationMode.BILINEAR,
            antialias=False,
        )
        ref = TF.horizontal_flip(ref) if flip[b] else ref
        assert torch.allclose(out[b], ref, atol=1e-5), b


def test_image_batches_resume_across_epochs():
    spec = V.DATASETS["cifar10"]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(50)
    ib = V.ImageBatches(x, y, batch_size=8, seed=7, spec=spec, augment=True)
    assert ib.steps_per_epoch == 6
    it = ib.batches(0)
    run = [next(it) for _ in range(15)]
    resumed = ib.batches(4)  # resumes in epoch 0, crosses into epochs 1 and 2
    for step in range(4, 15):
        xb, yb = next(resumed)
        assert torch.equal(xb, run[step][0]) and torch.equal(yb, run[step][1]), step
    # the documented formulas: epoch order seed * 100_003 + epoch, augmentation seed * 1_000_003 + step
    idx = torch.randperm(50, generator=torch.Generator().manual_seed(7 * 100_003 + 1))[16:24]
    expected = V.augment(
        V.normalize(x[idx], spec), torch.Generator().manual_seed(7 * 1_000_003 + 8)
    )
    assert torch.equal(run[8][1], y[idx]) and torch.equal(run[8][0], expected)
    epoch1 = list(ib.epoch(1, start=2))
    assert len(epoch1) == 4 and all(torch.equal(a[0], b[0]) for a, b in zip(epoch1, run[8:12]))
    # an epoch visits 48 distinct examples; epochs differ in order
    assert len(set(torch.cat([b[1] for b in run[:6]]).tolist())) == 48
    assert not torch.equal(run[0][1], run[6][1])
    plain = V.ImageBatches(x, y, batch_size=8, seed=7, spec=spec, augment=False)
    xb, yb = next(plain.batches(0))
    assert torch.equal(yb, run[0][1]) and torch.allclose(xb, V.normalize(x[yb], spec))
    assert not torch.allclose(run[0][0], xb, atol=1e-3)  # augmentation did change the images
    with pytest.raises(ValueError, match="no batch"):
        V.ImageBatches(x, y, batch_size=64, seed=0, spec=spec, augment=False)


def test_normalize_and_eval_batches():
    spec = V.DATASETS["cifar10"]
    x = torch.full((5, 3, 32, 32), 255, dtype=torch.uint8)
    n = V.normalize(x, spec)
    assert torch.allclose(n[0, :, 0, 0], (1 - torch.tensor(spec.mean)) / torch.tensor(spec.std))
    make = V.eval_batches(x, torch.arange(5), 2, spec)
    for _ in range(2):  # callable gives a fresh, same iterator each time
        batches = list(make())
        assert [len(b[1]) for b in batches] == [2, 2, 1]
        assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(5))
        assert torch.equal(batches[0][0], n[:2])


def test_fixture_classes_are_learnable():
    # nearest class mean on the train images beats chance by far on the test images
    xtr, ytr, xte, yte = FX.fixture_arrays("cifar10", 600, 200, seed=0)
    means = np.stack([xtr[ytr == c].reshape((ytr == c).sum(), -1).mean(0) for c in range(10)])
    pred = ((xte.reshape(200, 1, -1).astype(float) - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yte).mean() > 0.5


# ---------------------------------------------------------------- the data rule's checks


def _tree(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "name,rel",
    [
        ("mnist", "MNIST/raw/train-labels-idx1-ubyte"),
        ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ],
)
def test_staged_files_that_are_not_the_official_ones_are_refused_and_kept(tmp_path, name, rel):
    """Fixture files staged as if real (no fixture mode): not the official sums, so the data rule
    stops naming the first such file, and changes nothing."""
    root = tmp_path / "data"
    V.prepare(name, root, download_missing=False, fixtures=True)
    before = _tree(root)
    with pytest.raises(V.DataCorruptError, match=f"{root / rel} is truncated or altered"):
        V.prepare(name, root, download_missing=True, fixtures=False)
    assert _tree(root) == before


def test_fixture_mode_accepts_its_own_files_and_refuses_a_truncated_one(tmp_path):
    root = tmp_path / "data"
    first = V.prepare("fashion_mnist", root, download_missing=False, fixtures=True)
    assert first["source"] == "fixture" and len(first["files"]) == 4
    for rel, meta in first["files"].items():
        assert meta == {"sha256": V.sha256(root / rel), "bytes": (root / rel).stat().st_size}
    assert V.prepare("fashion_mnist", root, download_missing=False, fixtures=True) == first
    path = root / "FashionMNIST/raw/t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    before = _tree(root)
    with pytest.raises(V.DataCorruptError, match=f"{path} is truncated or altered"):
        V.prepare("fashion_mnist", root, download_missing=True, fixtures=True)
    assert _tree(root) == before


def test_official_sums_cover_every_mnist_file():
    for name in ("mnist", "fashion_mnist"):
        assert set(V.spec_of(name).files) <= set(V.OFFICIAL_SHA256)
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in V.OFFICIAL_SHA256.values())


def test_a_file_altered_after_the_data_rule_stops_the_run(tmp_path):
    import json

    from kvt.data.acquire import ChecksumError, verified_root
    from kvt.experiments import vision as rt

    root = tmp_path / "data"
    manifest = tmp_path / "cifar10.json"
    manifest.write_text(
        json.dumps(V.prepare("cifar10", root, download_missing=False, fixtures=True))
    )
    hp = {
        "task": "cifar10",
        "val_size": 20,
        "split_seed": 0,
        "train_size": None,
        "test_size": None,
        "batch_size": 16,
        "seed": 0,
    }
    assert len(rt.splits(hp, {"data": str(manifest)})["val"][0]) == 20
    path = root / "cifar-10-batches-py/test_batch"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit: the pickle still loads
    path.write_bytes(bytes(data))
    rt._splits.cache_clear(), verified_root.cache_clear()
    with pytest.raises(ChecksumError, match=f"{path} changed since the data rule"):
        rt.train_data(hp, {"data": str(manifest)})
    assert path.read_bytes() == bytes(data)
    path.unlink()
    verified_root.cache_clear()
    with pytest.raises(FileNotFoundError, match=f"{path} .listed in {manifest}. is missing"):
        rt.train_data(hp, {"data": str(manifest)})


def test_a_manifest_without_sums_is_refused(tmp_path):
    import json

    from kvt.data.acquire import ChecksumError, verified_root

    manifest = tmp_path / "mnist.json"
    manifest.write_text(json.dumps({"root": str(tmp_path), "files": {"MNIST/raw/x": 12}}))
    with pytest.raises(ChecksumError, match="older format"):
        verified_root(str(manifest))


# ---------------------------------------------------------------- normalisation statistics

# The reference's values, copied from its code: ViT_pos.py normalised CIFAR-10 and CIFAR-100 alike,
# ViT-nist_pos.py MNIST and Fashion-MNIST alike.
REFERENCE_CIFAR = ((0.49139968, 0.48215841, 0.44653091), (0.24703223, 0.24348513, 0.26158784))
REFERENCE_MNIST = ((0.1307,), (0.3081,))


@pytest.mark.parametrize(
    "name,reference",
    [
        ("cifar10", REFERENCE_CIFAR),
        ("cifar100", REFERENCE_CIFAR),
        ("mnist", REFERENCE_MNIST),
        ("fashion_mnist", REFERENCE_MNIST),
    ],
)
def test_reference_statistics(name, reference):
    ref = V.with_stats(name, "reference")
    assert (ref.mean, ref.std) == reference
    own = V.with_stats(name, "own")
    assert (own.mean, own.std) == (V.DATASETS[name].mean, V.DATASETS[name].std)
    assert ref.files == own.files == V.DATASETS[name].files  # only the statistics differ
    if name in V.REFERENCE_STATS:
        assert own.mean != ref.mean and own.std != ref.std
    with pytest.raises(ValueError, match="'mine'"):
        V.with_stats(name, "mine")


def test_norm_stats_choices_are_the_schema_enum():
    from dataclasses import fields

    from kvt.families.vision import ViTTask

    meta = next(f for f in fields(ViTTask) if f.name == "norm_stats").metadata
    assert tuple(meta["schema"]["enum"]) == V.NORM_STATS


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_own_statistics_are_those_of_its_training_images():
    import gzip

    raw = gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read()
    x = np.frombuffer(raw[16:], np.uint8) / 255
    spec = V.DATASETS["fashion_mnist"]
    assert abs(x.mean() - spec.mean[0]) < 1e-4 and abs(x.std() - spec.std[0]) < 1e-4


def test_runs_normalise_with_their_norm_stats(tmp_path):
    """The vision runtime reads norm_stats: CIFAR-100 with CIFAR-10's statistics by default."""
    from conftest import tiny_hparams, vision_inputs
    from kvt.experiments import vision as rt

    inputs = vision_inputs(tmp_path, "cifar100")
    hp = {**tiny_hparams("vision"), "task": "cifar100"}
    assert hp["norm_stats"] == "reference"
    x, _ = rt.splits(hp, inputs)["val"]
    for stats, (mean, std) in (
        ("reference", REFERENCE_CIFAR),
        ("own", (V.DATASETS["cifar100"].mean, V.DATASETS["cifar100"].std)),
    ):
        batch = next(rt.eval_data({**hp, "norm_stats": stats}, "val", inputs)())[0]
        expected = (
            x[: len(batch)].float() / 255 - torch.tensor(mean).view(-1, 1, 1)
        ) / torch.tensor(std).view(-1, 1, 1)
        assert torch.allclose(batch, expected, atol=1e-6), stats
