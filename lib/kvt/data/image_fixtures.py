"""Test fixtures of the image datasets in the exact formats torchvision reads: small synthetic
stand-ins (IDX files, Python 2 CIFAR pickles) in torchvision's layout. The smoke preset's data rules
write them (vision.prepare(fixtures=True) imports this module then), and so do the tests. Same
arguments, same bytes. Their sums are not the official ones: only fixture mode accepts them."""

from __future__ import annotations

import io
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np

from .acquire import sha256, write_atomic
from .vision import spec_of

# (train, test) images the data rule writes; default (600, 200). Set anomaly needs >= 9 a class.
IMAGE_COUNTS = {"cifar100": (2000, 1000)}


def fixture_arrays(name: str, n_train: int = 600, n_test: int = 200, seed: int = 0):
    """(x_train, y_train, x_test, y_test), uint8 N x C x H x W and int64: each class a fixed random
    low-frequency pattern plus pixel noise, so a small model can learn them; classes balanced."""
    spec = spec_of(name)
    rng = np.random.Generator(np.random.PCG64([seed, spec.classes, spec.channels]))
    s, c = spec.image_size, spec.channels
    coarse = rng.normal(size=(spec.classes, c, 4, 4))
    patterns = np.kron(coarse, np.ones((s // 4, s // 4)))  # 4 x 4 blocks: low frequency

    def make(n):
        y = rng.permutation(np.arange(n) % spec.classes)
        img = 128 + 50 * patterns[y] + rng.normal(scale=25, size=(n, c, s, s))
        return np.clip(np.rint(img), 0, 255).astype(np.uint8), y.astype(np.int64)

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return xtr, ytr, xte, yte


class _Py2Str(bytes):
    """A Python 2 `str`: pickled with the STRING opcodes, as in the real CIFAR pickles (written by
    Python 2's cPickle), so they load as str with encoding="latin1" and as bytes with "bytes"."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table is extensible
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + bytes(obj))

    dispatch[_Py2Str] = _save_py2str


def _py2(obj):
    """Python 3 containers of str -> the same with Python 2 strs."""
    if isinstance(obj, str):
        return _Py2Str(obj.encode("latin1"))
    if isinstance(obj, dict):
        return {_py2(k): _py2(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_py2(v) for v in obj]
    return obj


def _pickle_py2(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(_py2(obj))
    return buf.getvalue()


def _idx(array: np.ndarray) -> bytes:
    """IDX file: magic 0x0000 08 ndim (uint8), big-endian int32 dims, then the bytes."""
    return (
        struct.pack(">i", 0x800 + array.ndim)
        + struct.pack(f">{array.ndim}i", *array.shape)
        + array.tobytes()
    )


def _cifar_batch(x, y, label_key: str, batch_label: str, start: int, extra=None) -> dict:
    entry = {
        "batch_label": batch_label,
        label_key: [int(v) for v in y],
        "data": np.ascontiguousarray(x.reshape(len(x), -1)),  # N x 3072: R plane, G, B
        "filenames": [f"fixture_{start + i:05d}.png" for i in range(len(x))],
    }
    return {**entry, **(extra or {})}


def write_image_fixture(
    name: str, root, n_train: int = 600, n_test: int = 200, seed: int = 0
) -> list[Path]:
    """Write small files of `name` under root in the exact formats torchvision reads (data from
    fixture_arrays); returns their paths. Not the real data: CIFAR loads need verify=False."""
    spec, root = spec_of(name), Path(root)
    if spec.tv_class is None:
        return []
    xtr, ytr, xte, yte = fixture_arrays(name, n_train, n_test, seed)
    files = {}
    if spec.tv_class in ("MNIST", "FashionMNIST"):
        raw = f"{spec.tv_class}/raw"
        for prefix, x, y in (("train", xtr, ytr), ("t10k", xte, yte)):
            files[f"{raw}/{prefix}-images-idx3-ubyte"] = _idx(x[:, 0])  # magic 2051
            files[f"{raw}/{prefix}-labels-idx1-ubyte"] = _idx(y.astype(np.uint8))  # magic 2049
    elif spec.tv_class == "CIFAR10":
        folder, parts = "cifar-10-batches-py", np.array_split(np.arange(n_train), 5)
        for b, idx in enumerate(parts, 1):
            files[f"{folder}/data_batch_{b}"] = _pickle_py2(
                _cifar_batch(
                    xtr[idx],
                    ytr[idx],
                    "labels",
                    f"training batch {b} of 5",
                    int(idx[0]) if len(idx) else 0,
                )
            )
        files[f"{folder}/test_batch"] = _pickle_py2(
            _cifar_batch(xte, yte, "labels", "testing batch 1 of 1", 0)
        )
        files[f"{folder}/batches.meta"] = _pickle_py2(
            {
                "num_cases_per_batch": len(parts[0]),
                "label_names": [f"class_{i}" for i in range(10)],
                "num_vis": 3072,
            }
        )
    else:  # CIFAR100: fine labels 0..99; coarse = fine // 5 (20 superclasses)
        folder = "cifar-100-python"
        for fname, x, y, label in (("train", xtr, ytr, "training"), ("test", xte, yte, "testing")):
            files[f"{folder}/{fname}"] = _pickle_py2(
                _cifar_batch(
                    x,
                    y,
                    "fine_labels",
                    f"{label} batch 1 of 1",
                    0,
                    {"coarse_labels": [int(v) // 5 for v in y]},
                )
            )
        files[f"{folder}/meta"] = _pickle_py2(
            {
                "fine_label_names": [f"fine_{i}" for i in range(100)],
                "coarse_label_names": [f"coarse_{i}" for i in range(20)],
            }
        )
    return [write_atomic(root / rel, data) for rel, data in files.items()]


def image_counts(name: str) -> tuple[int, int]:
    return IMAGE_COUNTS.get(name, (600, 200))


def image_fixture_sums(name: str) -> dict[str, str]:
    """{rel: sha256} of the fixture files the data rule writes for `name` (deterministic)."""
    with tempfile.TemporaryDirectory() as tmp:
        return {
            str(p.relative_to(tmp)): sha256(p)
            for p in write_image_fixture(name, tmp, *image_counts(name))
        }
