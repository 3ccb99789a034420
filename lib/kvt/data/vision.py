"""Image classification data for the ViT experiments: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100
(read by torchvision's own dataset classes from files under a data folder `root`) and
scikit-learn's 8x8 digits (bundled with scikit-learn, no files; for fast CPU checks).

Nothing here touches the network except `download`, which the pipeline's data rule calls;
kvt.data.acquire places and checks the files.
Every split is a pure function of (files, split_seed, sizes) and every training batch a pure
function of (seed, step), so a run can be resumed at any step and see the same data.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import pickle
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.datasets as tvd
from torchvision.datasets.utils import check_integrity

from ..seeds import EPOCH_STRIDE, STEP_STRIDE, derived
from .acquire import (
    DataCorruptError,
    DataMissingError,
    FetchError,
    GaveUp,
    digest,
    file_record,
    manifest,
    move_into,
    retry,
    scratch,
    sha256,
    stage_command,
)
from .facts import FACTS, ImageFacts

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class VisionData:
    name: str
    tv_class: str | None  # torchvision.datasets class name; None for digits
    channels: int
    image_size: int
    patch: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    files: tuple[str, ...]  # relative to root, in torchvision's layout

    @property
    def classes(self) -> int:
        """Its number of classes (kvt.data.facts declares the dataset's sizes)."""
        return FACTS[self.name].classes


def _mnist_files(folder: str) -> tuple[str, ...]:
    return tuple(
        f"{folder}/raw/{f}"
        for f in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    )


_CIFAR10_FILES = tuple(
    f"cifar-10-batches-py/{f}"
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
)
_CIFAR100_FILES = tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta"))

# digits has no official test split: a fixed seeded permutation (independent of split_seed, so
# every run is scored on the same images) holds out DIGITS_TEST images as its "official" test set.
DIGITS_TEST, DIGITS_TEST_SEED = FACTS["digits"].test, 0

# mean/std: each dataset's own training-set statistics (scaled to 0..1); which a run uses is its
# norm_stats setting (see with_stats).
DATASETS: dict[str, VisionData] = {
    "mnist": VisionData(
        "mnist", "MNIST", 1, 28, 7, (0.1307,), (0.3081,), False, _mnist_files("MNIST")
    ),
    "fashion_mnist": VisionData(
        "fashion_mnist",
        "FashionMNIST",
        1,
        28,
        7,
        (0.2860,),
        (0.3530,),
        False,
        _mnist_files("FashionMNIST"),
    ),
    # the reference's values to all their digits (ViT_pos.py; UvA tutorial 15)
    "cifar10": VisionData(
        "cifar10",
        "CIFAR10",
        3,
        32,
        8,
        (0.49139968, 0.48215841, 0.44653091),
        (0.24703223, 0.24348513, 0.26158784),
        True,
        _CIFAR10_FILES,
    ),
    "cifar100": VisionData(
        "cifar100",
        "CIFAR100",
        3,
        32,
        8,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        True,
        _CIFAR100_FILES,
    ),
    # mean/std of the 1,437 fixed training images (train + val), scaled to 0..1 (test_digits)
    "digits": VisionData("digits", None, 1, 8, 2, (0.3057,), (0.3759,), False, ()),
}


def spec_of(name: str) -> VisionData:
    if name not in DATASETS:
        raise ValueError(f"unknown vision dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


# The reference normalised Fashion-MNIST with MNIST's statistics (ViT-nist_pos.py) and CIFAR-100
# with CIFAR-10's (ViT_pos.py): dataset -> the dataset whose statistics it used.
REFERENCE_STATS = {"fashion_mnist": "mnist", "cifar100": "cifar10"}
NORM_STATS = ("reference", "own")


def with_stats(name: str, norm_stats: str) -> VisionData:
    """The spec of `name` normalised with the reference's statistics or its own."""
    if norm_stats not in NORM_STATS:
        raise ValueError(f"norm_stats must be one of {NORM_STATS}, got {norm_stats!r}")
    spec = spec_of(name)
    source = spec_of(REFERENCE_STATS.get(name, name) if norm_stats == "reference" else name)
    return dataclasses.replace(spec, mean=source.mean, std=source.std)


# ---------------------------------------------------------------------------------------------
# Files: which a dataset has, their official sums, and the data rule that puts them in place
# (staged from the publishers' archives, downloaded, or fixtures; kvt.data.acquire places them)


def missing_files(name: str, root) -> list[Path]:
    root = Path(root)
    return [root / f for f in spec_of(name).files if not (root / f).is_file()]


def _how_to_get(name: str, root: Path, files) -> str:
    spec = spec_of(name)
    listed = "\n".join(f"  {f}" for f in files)
    folders = ", ".join(sorted({f.split("/")[0] for f in spec.files}))
    return (
        f"{listed}\nThey go in {root} (torchvision's layout: {folders}/...). "
        f"To get them: run the pipeline's data rule with data.download: true on a machine with "
        f"network (kvt.data.vision.download({name!r}, {str(root)!r})), or stage the publishers' "
        f"archives ({', '.join(archive_md5s(name))}) from a folder holding them "
        f"({stage_command(name, root)}, or list the folder in data.archives), or copy these files from a machine that has them into {root}, keeping "
        f"the same relative paths."
    )


def check_files(name: str, root) -> None:
    """Raise DataMissingError naming every missing file of `name` and how to get it."""
    missing = missing_files(name, root)
    if missing:
        raise DataMissingError(
            f"dataset {name}: {len(missing)} file(s) missing:\n"
            + _how_to_get(name, Path(root), missing)
        )


# sha256 of the official MNIST and Fashion-MNIST raw files: the publishers' .gz archives (whose
# md5s torchvision checks) decompressed. CIFAR's files are checked against torchvision's own md5s.
OFFICIAL_SHA256 = {
    "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "FashionMNIST/raw/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "FashionMNIST/raw/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "FashionMNIST/raw/t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def _is_official(spec: VisionData, root: Path, rel: str, sha: str) -> bool:
    if rel in OFFICIAL_SHA256:
        return sha == OFFICIAL_SHA256[rel]
    md5 = _torchvision_md5(getattr(tvd, spec.tv_class))
    return digest(root / rel, "md5") == md5[rel.split("/")[-1]]


def archive_md5s(name: str) -> dict[str, str]:
    """{archive file name: md5} of the publishers' archives of `name`, from torchvision's own
    tables: four .gz (one per IDX file) for MNIST and Fashion-MNIST, one .tar.gz for CIFAR."""
    cls = getattr(tvd, spec_of(name).tv_class)
    return {cls.filename: cls.tgz_md5} if issubclass(cls, tvd.CIFAR10) else dict(cls.resources)


def _provides(spec: VisionData, archive: str) -> list[str]:
    """The files (relative to root, torchvision's layout) an archive of `spec` unpacks to."""
    return (
        list(spec.files) if archive.endswith(".tar.gz") else [f"{spec.tv_class}/raw/{archive[:-3]}"]
    )


def _unpack(archive: Path, rels: list[str], tmp: Path) -> None:
    """Write the files `rels` of `archive` under tmp. gzip checks its CRC and length at the end of
    the stream, so a truncated or altered archive raises here."""
    if archive.name.endswith(".tar.gz"):
        found = set()
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one pass: no seeking back in the compressed stream
                if member.name in rels and member.isfile():
                    (tmp / member.name).parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(tmp / member.name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found.add(member.name)
        if set(rels) - found:
            raise ValueError(f"it holds no {', '.join(sorted(set(rels) - found))}")
        return
    (tmp / rels[0]).parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(archive) as src, open(tmp / rels[0], "wb") as dst:
        shutil.copyfileobj(src, dst)


def _unpack_checked(spec: VisionData, archive: Path, md5: str, rels: list[str], tmp: Path) -> bool:
    """Unpack `archive` into tmp if it is the official archive: True. False (nothing left in tmp)
    if it is an official file of another dataset under the same name (MNIST's and Fashion-MNIST's
    archives share their names). Raise DataCorruptError naming it otherwise.

    Its md5 is checked as torchvision checks it. An archive with another md5 is still accepted if
    it unpacks to the official files: a recompressed copy, such as Debian's dataset-fashion-mnist
    (gzip headers without the file name, other time stamps)."""
    actual = digest(archive, "md5")
    try:
        _unpack(archive, rels, tmp)
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, ValueError) as e:
        reason = f"it cannot be unpacked ({type(e).__name__}: {e})"  # not a full disk: that raises
    else:
        if actual == md5:
            return True
        digests = [sha256(tmp / rel) for rel in rels]
        if all(_is_official(spec, tmp, rel, d) for rel, d in zip(rels, digests)):
            return True
        if all(d in OFFICIAL_SHA256.values() for d in digests):
            for rel in rels:
                (tmp / rel).unlink()
            return False
        reason = "it unpacks to files that are not the official ones"
    md5_note = (
        "its md5 is torchvision's"
        if actual == md5
        else f"its md5 {actual} is not torchvision's {md5}"
    )
    raise DataCorruptError(
        f"dataset {spec.name}: archive {archive} is truncated or altered: {md5_note}, and {reason}. "
        "Nothing was placed in the data folder. Replace it with a good copy, or remove its folder "
        "from data.archives."
    )


def stage(name: str, root, folders) -> list[Path]:
    """Place the missing files of `name` from the publishers' archives in `folders` (data.archives;
    the first folder holding an archive of that name is used); returns the files placed.

    Every archive is unpacked into a temporary folder beside root and checked (_unpack_checked);
    the files are renamed into place only when every archive has passed, so a refused archive
    leaves root as it was. Archives not found leave their files missing (then downloaded, or
    reported)."""
    spec, root = spec_of(name), Path(root)
    if spec.tv_class is None or not folders:
        return []
    missing = {str(p.relative_to(root)) for p in missing_files(name, root)}
    md5s = archive_md5s(name)
    wanted = {a: [r for r in _provides(spec, a) if r in missing] for a in md5s}
    wanted = {a: rels for a, rels in wanted.items() if rels}
    candidates = {a: [Path(f) / a for f in folders if (Path(f) / a).is_file()] for a in wanted}
    if not any(candidates.values()):
        return []
    root.mkdir(parents=True, exist_ok=True)
    with scratch(root, f"{name}-stage") as tmp:
        placed = [
            rel
            for a, paths in candidates.items()
            if any(_unpack_checked(spec, p, md5s[a], wanted[a], tmp) for p in paths)
            for rel in wanted[a]
        ]
        return move_into(tmp, root, placed)


def download(name: str, root, retries: int = 3, wait: float = 5.0) -> list[Path]:
    """Fetch the missing files of `name` with torchvision's downloader (its mirrors, its md5
    checks); returns the files placed.

    torchvision downloads into a temporary folder beside `root`; only complete, expected files are
    then renamed into place, so `root` never holds a half-written file. Files already present are
    kept as they are; if none is missing nothing is downloaded. Any failure (network, md5,
    extraction) is retried (acquire.retry).
    """
    spec, root = spec_of(name), Path(root)
    missing = missing_files(name, root)
    if not missing:
        return []
    root.mkdir(parents=True, exist_ok=True)

    def attempt():
        with scratch(root, f"{name}-download") as tmp:
            getattr(tvd, spec.tv_class)(str(tmp), train=True, download=True)
            absent = [f for f in spec.files if not (tmp / f).is_file()]
            if absent:
                raise RuntimeError(f"torchvision's download did not produce {', '.join(absent)}")
            return move_into(tmp, root, [str(p.relative_to(root)) for p in missing])

    try:
        return retry(attempt, retries=retries, wait=wait, errors=(Exception,))
    except GaveUp as e:
        raise FetchError(
            f"dataset {name}: download failed after {e}\nPlace these files by hand:\n"
            + _how_to_get(name, root, missing_files(name, root))
        ) from e.error


def prepare(
    name: str,
    root,
    *,
    download_missing: bool,
    fixtures: bool,
    retries: int = 3,
    wait: float = 5.0,
    archives=(),
) -> dict:
    """Make the files of `name` present under root, check them, and describe them (the data rule's
    manifest: {dataset, root, source, files: {rel: {sha256, bytes}}}; jobs check the files
    against it before they read them).

    Files already in place are used as they are (an offline cluster stages them once) if they are
    the official files (fixture mode also accepts the fixture files); any other file is an error
    naming it, and is left as it is. Missing files are unpacked from the publishers' archives in
    the folders `archives` (stage), else written as fixtures (`fixtures`: the smoke preset and
    tests; never over real files), or downloaded (`download_missing`), or reported with where to
    put them."""
    spec, root = spec_of(name), Path(root)
    if spec.tv_class is None:
        return manifest(root, "scikit-learn", {}, dataset=name)
    source = "archive" if stage(name, root, archives) else "staged"
    missing = missing_files(name, root)
    accepted = {}  # the fixture files' sums: accepted in fixture mode only
    if fixtures:  # the fixture writers are loaded only here (smoke preset, tests)
        from .image_fixtures import image_counts, image_fixture_sums, write_image_fixture

        accepted = image_fixture_sums(name)
    if missing and fixtures:
        if len(missing) != len(spec.files):
            raise DataMissingError(
                f"dataset {name}: some files exist and others do not; fixtures "
                "are only written into an empty folder:\n" + _how_to_get(name, root, missing)
            )
        write_image_fixture(name, root, *image_counts(name))
        source = "fixture"
    elif missing and download_missing:
        download(name, root, retries=retries, wait=wait)
        source = "downloaded"
    check_files(name, root)
    files, bad = {}, []
    for rel in spec.files:
        path = root / rel
        sha = sha256(path)
        if accepted.get(rel) == sha:
            source = "fixture"
        elif not _is_official(spec, root, rel, sha):
            bad.append(f"{path} is truncated or altered (sha256 {sha})")
        files[rel] = file_record(path, sha)
    if bad:
        raise DataCorruptError(
            f"dataset {name}: {len(bad)} file(s) are not the official files:\n  "
            + "\n  ".join(bad)
            + f"\nThey were not used and are left as they are. Delete them and rerun the pipeline to "
            f"download them again (data.download: true), or copy good copies into {root}."
        )
    return manifest(root, source, files, dataset=name)


def stage_from(name: str, root, folder) -> dict:
    """`python -m kvt.data.acquire stage`: the data rule with `folder` as the only source (its
    publishers' archives), no download, no fixtures -> the manifest."""
    try:
        return prepare(name, root, download_missing=False, fixtures=False, archives=[folder])
    except DataMissingError as e:
        raise DataMissingError(
            f"{folder} does not hold every archive of {name} that is needed "
            f"({', '.join(archive_md5s(name))}; archives of another dataset under "
            f"the same names are passed over).\n{e}"
        ) from e


def file_states(name: str, root) -> dict[str, str]:
    """{rel: verified | fixture | missing | corrupt} of the files of `name` under root (`python -m
    kvt.data.acquire status`); fixture: a file the smoke preset's data rule wrote."""
    spec, root = spec_of(name), Path(root)
    fixture_sums = None
    states = {}
    for rel in spec.files:
        path = root / rel
        if not path.is_file():
            states[rel] = "missing"
            continue
        sha = sha256(path)
        if _is_official(spec, root, rel, sha):
            states[rel] = "verified"
            continue
        if fixture_sums is None:
            from .image_fixtures import image_fixture_sums

            fixture_sums = image_fixture_sums(name)
        states[rel] = "fixture" if fixture_sums.get(rel) == sha else "corrupt"
    return states


# ---------------------------------------------------------------------------------------------
# Reading


def _unverified(cls):
    """`cls` (CIFAR10/CIFAR100) with its md5 checks off: torchvision's check_integrity(path, None)
    only tests that the file exists. For fixture files, which are not the real archives' files and
    so cannot match torchvision's md5 sums (the smoke preset loads with verify=False)."""
    return type(
        f"Unverified{cls.__name__}",
        (cls,),
        {
            "train_list": [[f, None] for f, _ in cls.train_list],
            "test_list": [[f, None] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        },
    )


def _torchvision_md5(cls) -> dict[str, str]:
    """{file name: md5} of a CIFAR class's files, as torchvision records them."""
    return dict(cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]])


def _md5_failures(cls, root: Path) -> list[str]:
    folder = root / cls.base_folder
    return [
        str(folder / f)
        for f, md5 in _torchvision_md5(cls).items()
        if not check_integrity(folder / f, md5)
    ]


def _first_unreadable(spec: VisionData, root: Path, train: bool) -> tuple[Path, Exception] | None:
    """Which file of the split made torchvision's reader fail (to name it in the error)."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for rel in spec.files:
        path = root / rel
        try:
            if spec.tv_class in ("MNIST", "FashionMNIST"):
                if rel.split("/")[-1].startswith("train" if train else "t10k"):
                    (read_image_file if "images" in rel else read_label_file)(str(path))
            else:
                with open(path, "rb") as f:
                    if not isinstance(pickle.load(f, encoding="latin1"), dict):
                        raise ValueError("not a pickled dict")
        except Exception as e:
            return path, e
    return None


def _read_tv(spec: VisionData, root: Path, train: bool, verify: bool) -> Split:
    """One official split through the torchvision class, as (uint8 N x C x H x W, int64 N)."""
    cls = getattr(tvd, spec.tv_class)
    is_cifar = issubclass(cls, tvd.CIFAR10)
    if is_cifar and not verify:
        cls = _unverified(cls)
    try:
        ds = cls(str(root), train=train, download=False)
    except Exception as e:
        bad_md5 = _md5_failures(cls, root) if is_cifar and verify else []
        if bad_md5:
            raise DataCorruptError(
                f"dataset {spec.name}: torchvision's md5 check fails for {', '.join(bad_md5)}. These are "
                f"not the official files (corrupt, or test fixtures; fixtures load with verify=False)"
            ) from e
        culprit = _first_unreadable(spec, root, train)
        where = (
            f"cannot read {culprit[0]}: {culprit[1]!r}"
            if culprit
            else f"cannot read files under {root}: {e!r}"
        )
        raise DataCorruptError(
            f"dataset {spec.name}: {where}. Replace the file (delete it and run the "
            f"data rule with data.download: true, or copy a good copy into {root})"
        ) from e
    x = torch.as_tensor(np.asarray(ds.data))
    x = (
        x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    )  # MNIST N x H x W; CIFAR N x H x W x C
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    if len(x) != len(y):
        raise DataCorruptError(
            f"dataset {spec.name}: {len(x)} images but {len(y)} labels under {root}"
        )
    return x.contiguous(), y


def measure(name: str, root) -> ImageFacts:
    """The facts of the files of `name` under root (the data rule's, checked): the images of each
    class in each split, counted from the labels. For files the declared facts cannot describe
    (fixtures, staged files): the data rule checks the settings against these."""
    spec = spec_of(name)
    if spec.tv_class is None:
        (_, ytr), (_, yte) = _digits_official()
    else:
        (_, ytr), (_, yte) = (_read_tv(spec, Path(root), t, verify=False) for t in (True, False))

    def per_class(y: torch.Tensor) -> tuple[int, ...]:
        return tuple(int(c) for c in torch.bincount(y, minlength=spec.classes))

    return ImageFacts(FACTS[name].title, per_class(ytr), per_class(yte))


def _digits_official() -> tuple[Split, Split]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.rint(d.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(DIGITS_TEST_SEED))
    test, train = perm[:DIGITS_TEST].sort().values, perm[DIGITS_TEST:].sort().values
    return (x[train], y[train]), (x[test], y[test])


def _split_indices(n: int, val_size: int, gen: torch.Generator, train_size: int | None):
    if not 0 < val_size < n:
        raise ValueError(f"val_size {val_size} must be between 1 and {n - 1} (training set of {n})")
    if train_size is not None and not 0 < train_size <= n - val_size:
        raise ValueError(f"train_size {train_size} must be between 1 and {n - val_size}")
    perm = torch.randperm(n, generator=gen)
    end = n if train_size is None else val_size + train_size
    return perm[val_size:end].sort().values, perm[:val_size].sort().values


def load_splits(
    name: str,
    root,
    *,
    val_size: int,
    split_seed: int,
    train_size: int | None = None,
    test_size: int | None = None,
    verify: bool = True,
) -> dict[str, Split]:
    """{"train", "val", "test"} -> (uint8 N x C x H x W, int64 N).

    Val is held out from the official training set, train is the rest (or a seeded subset of
    train_size), test is the official test set (or a seeded subset of test_size); one generator
    seeded by split_seed draws all of it. verify=False skips torchvision's md5 check of the CIFAR
    files (for fixtures, which cannot match it); the files must still exist.
    """
    spec, root = spec_of(name), Path(root)
    check_files(name, root)
    if spec.tv_class is None:
        (xtr, ytr), (xte, yte) = _digits_official()
    else:
        (xtr, ytr), (xte, yte) = (_read_tv(spec, root, t, verify) for t in (True, False))
    gen = torch.Generator().manual_seed(split_seed)
    train, val = _split_indices(len(xtr), val_size, gen, train_size)
    if test_size is None:
        test = torch.arange(len(xte))
    elif 0 < test_size <= len(xte):
        test = torch.randperm(len(xte), generator=gen)[:test_size].sort().values
    else:
        raise ValueError(f"test_size {test_size} must be between 1 and {len(xte)}")
    return {
        "train": (xtr[train], ytr[train]),
        "val": (xtr[val], ytr[val]),
        "test": (xte[test], yte[test]),
    }


# ---------------------------------------------------------------------------------------------
# Normalisation, augmentation, batches


def normalize(x: torch.Tensor, spec: VisionData) -> torch.Tensor:
    """uint8 (..., C, H, W) -> float (x/255 - mean) / std per channel."""
    mean = torch.tensor(spec.mean).view(-1, 1, 1)
    std = torch.tensor(spec.std).view(-1, 1, 1)
    return (x.float() / 255 - mean) / std


def _sample_boxes(
    n: int, height: int, width: int, gen: torch.Generator, scale, ratio, tries: int = 10
):
    """Crop boxes (top, left, h, w), each an int64 tensor of n, drawn as torchvision's
    RandomResizedCrop.get_params draws them (up to 10 tries, then the fallback), vectorised."""
    area = height * width
    target = area * (
        scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries, generator=gen, dtype=torch.float64)
    )
    logr = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(
        logr[0] + (logr[1] - logr[0]) * torch.rand(n, tries, generator=gen, dtype=torch.float64)
    )
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.long().argmax(1), -1)
    pick = first.clamp(min=0).unsqueeze(1)
    w, h = w.gather(1, pick).squeeze(1), h.gather(1, pick).squeeze(1)
    # torchvision's fallback: a central crop of the whole image, its aspect clamped to `ratio`
    in_ratio = width / height
    fw, fh = (
        (width, round(width / ratio[0]))
        if in_ratio < ratio[0]
        else (round(height * ratio[1]), height)
        if in_ratio > ratio[1]
        else (width, height)
    )
    none = first < 0
    w, h = torch.where(none, fw, w), torch.where(none, fh, h)
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    top = torch.where(none, (height - h) // 2, (u[:, 0] * (height - h + 1)).long())
    left = torch.where(none, (width - w) // 2, (u[:, 1] * (width - w + 1)).long())
    return top, left, h, w


def _axis_coords(start, length, size: int) -> torch.Tensor:
    """grid_sample (align_corners=False) coordinates that resize [start, start+length) to `size`
    pixels as F.interpolate(bilinear, align_corners=False) does: the source index is clamped into
    the crop, so pixels outside the crop never blend in."""
    out = torch.arange(size, dtype=torch.float64)
    src = ((out + 0.5) * (length.unsqueeze(1).double() / size) - 0.5).clamp(min=0)
    src = torch.minimum(src, length.unsqueeze(1).double() - 1) + start.unsqueeze(1)
    return ((2 * src + 1) / size - 1).float()  # n x size, in the input's normalised coordinates


def _resized_crop(x: torch.Tensor, boxes, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop each image of x (B x C x H x W) to its box and resize back to H x W, bilinearly,
    optionally mirrored left-right."""
    top, left, h, w = boxes
    n, _, height, width = x.shape
    gx, gy = _axis_coords(left, w, width), _axis_coords(top, h, height)
    if flip is not None:
        gx = torch.where(flip.unsqueeze(1), gx.flip(1), gx)
    grid = torch.stack(
        (gx.unsqueeze(1).expand(n, height, width), gy.unsqueeze(2).expand(n, height, width)), -1
    )
    return F.grid_sample(
        x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    scale=(0.8, 1.0),
    ratio=(0.9, 1.1),
    flip_p: float = 0.5,
) -> torch.Tensor:
    """Random horizontal flip (p flip_p) + RandomResizedCrop(image size, scale, ratio), batched.

    The batched equivalent of torchvision's RandomResizedCrop(bilinear) + RandomHorizontalFlip:
    boxes are drawn per image as get_params draws them (from `generator`, so deterministic given
    its seed), then all images are cropped and resized in one grid_sample call with the sampling
    positions of F.interpolate(bilinear, align_corners=False). The crop is never larger than the
    image, so the resize only upsamples and antialiasing would change nothing. Works on normalised
    images: normalisation is per-channel affine, so it commutes with interpolation and flipping.

    Why not torchvision.transforms.v2 (checked with torchvision 0.29): RandomResizedCrop and
    RandomHorizontalFlip draw from the global RNG (make_params: torch.empty(1).uniform_,
    torch.randint; no generator argument), one draw per call, so a batch shares one crop; per
    image that is a Python loop, and a step's batch would depend on whatever else used the global
    RNG. v2.functional.resized_crop on our boxes differs from this grid_sample by up to 1.2e-7
    (test_resized_crop_matches_torchvision), so switching would change the numbers.
    """
    n, _, height, width = x.shape
    boxes = _sample_boxes(n, height, width, generator, scale, ratio)
    flip = torch.rand(n, generator=generator) < flip_p
    return _resized_crop(x, boxes, flip)


class ImageBatches:
    """Training batches of normalised (optionally augmented) images for the trainer.

    The batch of global step s is a pure function of (seed, s): epoch e = s // steps_per_epoch is
    ordered by randperm seeded with seed * 100_003 + e (as TensorBatches), and step s's augmentation
    uses a generator seeded with seed * 1_000_003 + s. A run resumed at any step therefore sees
    exactly the batches an uninterrupted run sees. The last partial batch of an epoch is dropped.
    """

    def __init__(
        self,
        x_uint8: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        spec: VisionData,
        augment: bool,
    ):
        if len(x_uint8) != len(y):
            raise ValueError(f"{len(x_uint8)} images but {len(y)} labels")
        self.x, self.y, self.batch_size, self.seed = x_uint8, y, batch_size, seed
        self.spec, self.augment = spec, augment
        self.steps_per_epoch = len(x_uint8) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(x_uint8)} training examples make no batch of {batch_size}")

    def _order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(
            len(self.x),
            generator=torch.Generator().manual_seed(derived(self.seed, EPOCH_STRIDE, epoch)),
        )

    def _batch(self, order: torch.Tensor, step: int):
        i = step % self.steps_per_epoch
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        x = normalize(self.x[idx], self.spec)
        if self.augment:
            x = augment(x, torch.Generator().manual_seed(derived(self.seed, STEP_STRIDE, step)))
        return x, self.y[idx]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, from batch index `start` on."""
        order = self._order(epoch)
        for i in range(start, self.steps_per_epoch):
            yield self._batch(order, epoch * self.steps_per_epoch + i)

    def batches(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless batches of global steps start_step, start_step + 1, ..."""
        epoch, start = divmod(start_step, self.steps_per_epoch)
        while True:
            yield from self.epoch(epoch, start)
            epoch, start = epoch + 1, 0


def eval_batches(
    x_uint8: torch.Tensor, y: torch.Tensor, batch_size: int, spec: VisionData
) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A callable giving, each time, the normalised batches of a fixed set in order (no augmentation)."""

    def batches():
        for i in range(0, len(x_uint8), batch_size):
            yield normalize(x_uint8[i : i + batch_size], spec), y[i : i + batch_size]

    return batches


def load_official(
    name: str,
    root,
    *,
    verify: bool = True,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
) -> dict[str, Split]:
    """{"train", "test"}: the official splits of a file-based dataset (seeded subsets of
    train_size / test_size images when given), for the set-anomaly features."""
    spec, root = spec_of(name), Path(root)
    check_files(name, root)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for split, size in (("train", train_size), ("test", test_size)):
        x, y = _read_tv(spec, root, split == "train", verify)
        if size is not None:
            if not 0 < size <= len(x):
                raise ValueError(f"{name}: {split} subset of {size} images, but it has {len(x)}")
            keep = torch.randperm(len(x), generator=gen)[:size].sort().values
            x, y = x[keep], y[keep]
        out[split] = (x, y)
    return out
