"""kvt.data.vision.stage: the data rule unpacks the publishers' archives from local folders
(data.archives). Fixture archives in the real formats (.gz of IDX files; a .tar.gz of CIFAR
pickles under cifar-*-python/); the tables of official sums are patched to the fixtures' own,
since fixtures cannot match the real md5s. One test reads the real Debian package when installed."""

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from kvt.data import image_fixtures as FX
from kvt.data import vision as V

N_TRAIN, N_TEST = 60, 20
DEBIAN = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def _md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def write_archives(name, folder, seed=3, mtime=0) -> dict[str, Path]:
    """The publisher's archives of `name`, holding fixture files: {archive name: path}."""
    spec, folder = V.spec_of(name), Path(folder)
    files = folder / "unpacked"
    FX.write_image_fixture(name, files, n_train=N_TRAIN, n_test=N_TEST, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for archive in V.archive_md5s(name):
        path = folder / archive
        if archive.endswith(".tar.gz"):  # members as the real tarball: cifar-*-python/<file>
            with tarfile.open(path, "w:gz") as tar:
                readme = tarfile.TarInfo(f"{spec.files[0].split('/')[0]}/readme.html")
                readme.size, readme.mtime = 5, mtime
                tar.addfile(readme, io.BytesIO(b"hello"))
                for rel in spec.files:
                    tar.add(files / rel, arcname=rel)
        else:
            path.write_bytes(
                gzip.compress(
                    (files / spec.tv_class / "raw" / archive[:-3]).read_bytes(), mtime=mtime
                )
            )
        out[archive] = path
    return out


def official_archives(monkeypatch, archives: dict, name: str) -> None:
    """Make `archives` the archives torchvision lists for `name` (their md5s)."""
    real = V.archive_md5s
    table = {a: _md5(p) for a, p in archives.items()}
    monkeypatch.setattr(V, "archive_md5s", lambda n: table if n == name else real(n))


def official_files(monkeypatch, root, name) -> None:
    """Make the fixture files of `name` (MNIST-like) the official files (their sha256)."""
    sums = dict(V.OFFICIAL_SHA256)
    sums.update({rel: V.sha256(Path(root) / rel) for rel in V.spec_of(name).files})
    monkeypatch.setattr(V, "OFFICIAL_SHA256", sums)


def _tree(folder) -> dict:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_good_archives_unpack_into_torchvisions_layout(tmp_path, monkeypatch, name):
    archives = write_archives(name, tmp_path / "archives")
    official_archives(monkeypatch, archives, name)
    root = tmp_path / "data"
    placed = V.stage(name, root, [tmp_path / "archives"])
    assert sorted(placed) == sorted(root / rel for rel in V.spec_of(name).files)
    assert _tree(root) == _tree(tmp_path / "archives" / "unpacked")  # only the files, byte for byte
    s = V.load_splits(name, root, val_size=10, split_seed=0, verify=False)  # torchvision reads them
    assert len(s["test"][1]) == N_TEST
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives", "data"]  # no temporary folder
    assert V.stage(name, root, [tmp_path / "archives"]) == []  # nothing missing: nothing unpacked


def test_prepare_stages_before_downloading_and_records_the_source(tmp_path, monkeypatch):
    archives = write_archives("fashion_mnist", tmp_path / "archives")
    official_archives(monkeypatch, archives, "fashion_mnist")
    official_files(monkeypatch, tmp_path / "archives" / "unpacked", "fashion_mnist")
    monkeypatch.setattr(V, "download", lambda *a, **k: pytest.fail("downloaded"))
    root = tmp_path / "data"
    info = V.prepare(
        "fashion_mnist",
        root,
        download_missing=True,
        fixtures=False,
        archives=[tmp_path / "nothing here", tmp_path / "archives"],
    )
    assert info["source"] == "archive" and len(info["files"]) == 4
    again = V.prepare(
        "fashion_mnist",
        root,
        download_missing=True,
        fixtures=False,
        archives=[tmp_path / "archives"],
    )
    assert again["source"] == "staged" and again["files"] == info["files"]


def test_only_missing_files_are_unpacked(tmp_path, monkeypatch):
    archives = write_archives("mnist", tmp_path / "archives")
    official_archives(monkeypatch, archives, "mnist")
    root = tmp_path / "data"
    V.stage("mnist", root, [tmp_path / "archives"])
    kept = root / "MNIST/raw/train-images-idx3-ubyte"
    before = kept.stat().st_mtime_ns
    (root / "MNIST/raw/t10k-labels-idx1-ubyte").unlink()
    assert V.stage("mnist", root, [tmp_path / "archives"]) == [
        root / "MNIST/raw/t10k-labels-idx1-ubyte"
    ]
    assert kept.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "name,archive",
    [("mnist", "t10k-labels-idx1-ubyte.gz"), ("cifar100", "cifar-100-python.tar.gz")],
)
def test_truncated_archive_is_refused_and_nothing_is_placed(tmp_path, monkeypatch, name, archive):
    archives = write_archives(name, tmp_path / "archives")
    official_archives(monkeypatch, archives, name)
    path = archives[archive]  # MNIST: the last of four, after three good ones were unpacked
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    root = tmp_path / "data"
    with pytest.raises(V.DataCorruptError, match=f"archive {path} is truncated or altered") as e:
        V.stage(name, root, [tmp_path / "archives"])
    assert "cannot be unpacked" in str(e.value) and _md5(path) in str(e.value)
    assert _tree(root) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives", "data"]


@pytest.mark.parametrize(
    "name,archive",
    [("fashion_mnist", "train-images-idx3-ubyte.gz"), ("cifar10", "cifar-10-python.tar.gz")],
)
def test_altered_archive_is_refused(tmp_path, monkeypatch, name, archive):
    """One bit flipped inside the compressed data: the md5 differs, and gzip's CRC (or the unpacked
    files' sums) fails."""
    archives = write_archives(name, tmp_path / "archives")
    official_archives(monkeypatch, archives, name)
    path = archives[archive]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    root = tmp_path / "data"
    with pytest.raises(V.DataCorruptError, match=f"archive {path} is truncated or altered"):
        V.stage(name, root, [tmp_path / "archives"])
    assert _tree(root) == {}


def test_altered_but_well_formed_archive_is_refused(tmp_path, monkeypatch):
    """A valid .gz of other data under an official archive's name: md5 and contents both differ."""
    archives = write_archives("mnist", tmp_path / "archives")
    official_archives(monkeypatch, archives, "mnist")
    official_files(monkeypatch, tmp_path / "archives" / "unpacked", "mnist")
    path = archives["train-labels-idx1-ubyte.gz"]
    labels = bytearray(gzip.decompress(path.read_bytes()))
    labels[-1] = (labels[-1] + 1) % 10  # one label changed
    path.write_bytes(gzip.compress(bytes(labels), mtime=0))
    with pytest.raises(V.DataCorruptError, match="unpacks to files that are not the official ones"):
        V.stage("mnist", tmp_path / "data", [tmp_path / "archives"])
    assert _tree(tmp_path / "data") == {}


def test_the_md5_decides_unless_the_contents_are_official(tmp_path, monkeypatch):
    """torchvision's md5 accepts an archive by itself; a recompressed archive (another md5, as
    Debian's) is accepted only when its unpacked files are the official ones."""
    archives = write_archives("mnist", tmp_path / "archives", mtime=0)
    official_archives(monkeypatch, archives, "mnist")  # the publisher's: mtime 0
    recompressed = write_archives("mnist", tmp_path / "debian", mtime=1234)
    assert all(_md5(recompressed[a]) != _md5(archives[a]) for a in archives)
    with pytest.raises(V.DataCorruptError, match="is not torchvision's"):
        V.stage("mnist", tmp_path / "data", [tmp_path / "debian"])
    official_files(monkeypatch, tmp_path / "archives" / "unpacked", "mnist")
    assert len(V.stage("mnist", tmp_path / "data", [tmp_path / "debian"])) == 4


def test_another_datasets_archives_of_the_same_name_are_passed_over(tmp_path, monkeypatch):
    """MNIST's and Fashion-MNIST's archives share their names: a folder of one is skipped for the
    other (the next folder is tried), not refused as altered."""
    fashion = write_archives("fashion_mnist", tmp_path / "fashion", seed=1)
    official_archives(monkeypatch, fashion, "fashion_mnist")
    official_files(monkeypatch, tmp_path / "fashion" / "unpacked", "fashion_mnist")
    root = tmp_path / "data"
    assert V.stage("mnist", root, [tmp_path / "fashion"]) == []
    assert _tree(root) == {}
    with pytest.raises(V.DataMissingError, match="data.archives"):
        V.prepare(
            "mnist", root, download_missing=False, fixtures=False, archives=[tmp_path / "fashion"]
        )
    mnist = write_archives("mnist", tmp_path / "mnist", seed=2)
    official_archives(monkeypatch, mnist, "mnist")
    assert len(V.stage("mnist", root, [tmp_path / "fashion", tmp_path / "mnist"])) == 4
    assert _tree(root) == _tree(tmp_path / "mnist" / "unpacked")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_package(tmp_path):
    """The real archives of the package (recompressed in 0.0~git20200523.55506a9-1: md5s not
    torchvision's, contents official) unpack to the official files."""
    root = tmp_path / "data"
    info = V.prepare(
        "fashion_mnist", root, download_missing=False, fixtures=False, archives=[DEBIAN]
    )
    assert info["source"] == "archive"
    assert {rel: m["sha256"] for rel, m in info["files"].items()} == {
        rel: V.OFFICIAL_SHA256[rel] for rel in V.spec_of("fashion_mnist").files
    }
    assert V.stage("mnist", root, [DEBIAN]) == []  # Fashion-MNIST's files are not MNIST's
