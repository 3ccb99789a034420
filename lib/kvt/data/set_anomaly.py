"""Set anomaly detection on CIFAR-100 (UvA tutorial 6): sets of images, one of them from another class.

Sets are index arrays into a frozen-feature table, fixed by a seed (numpy PCG64), so every variant
and seed sees the same sets. Unlike the tutorial, the odd one sits at a uniformly random position:
a model with positional information could otherwise learn "the last one".
"""

import math
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_WEIGHTS = ("imagenet", "random")
RANDOM_WEIGHTS_SEED = 0


def _labels_array(labels) -> np.ndarray:
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1D integer array, got shape {labels.shape} {labels.dtype}")
    return labels.astype(np.int64)


def make_sets(labels, n_sets: int, set_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(members, target): n_sets x set_size int64 indices into `labels` and the n_sets positions of
    the odd one out.

    As in the tutorial, the odd ones cycle through seeded permutations of all images (each image is
    the odd one equally often); the set's class is drawn uniformly from the other classes, and its
    set_size - 1 distinct images uniformly from that class. Each row is then shuffled, so the odd
    one's position is uniform over 0..set_size-1. A pure function of (labels, n_sets, set_size, seed).
    """
    labels = _labels_array(labels)
    if set_size < 2:
        raise ValueError(f"a set needs at least 2 elements, got set_size={set_size}")
    if n_sets < 1:
        raise ValueError(f"n_sets must be positive, got {n_sets}")
    classes, cls, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"sets need images of at least 2 classes, got {len(classes)}")
    k = set_size - 1
    if counts.min() < k:
        small = classes[counts < k]
        raise ValueError(f"class(es) {small[:10].tolist()} have fewer than set_size-1={k} images "
                         f"(smallest: {counts.min()})")
    rng = np.random.Generator(np.random.PCG64(seed))
    n = len(labels)

    odd = np.concatenate([rng.permutation(n) for _ in range(math.ceil(n_sets / n))])[:n_sets]
    # Set class uniform over the classes other than the odd one's.
    set_cls = rng.integers(0, len(classes) - 1, size=n_sets)
    set_cls += set_cls >= cls[odd]
    # k distinct images of the set class: Floyd's algorithm, vectorised over the sets.
    size = counts[set_cls]
    local = np.empty((n_sets, k), dtype=np.int64)
    for s in range(k):
        j = size - k + s
        t = rng.integers(0, j + 1)
        taken = (local[:, :s] == t[:, None]).any(axis=1)
        local[:, s] = np.where(taken, j, t)
    by_class = np.argsort(cls, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rows = np.concatenate((by_class[starts[set_cls][:, None] + local], odd[:, None]), axis=1)
    # Shuffle each row; the odd one (last column before the shuffle) lands uniformly anywhere.
    perm = np.argsort(rng.random((n_sets, set_size)), axis=1)
    members = np.take_along_axis(rows, perm, axis=1)
    target = np.argmax(perm == k, axis=1)
    return torch.from_numpy(members), torch.from_numpy(target.astype(np.int64))


def balanced_holdout(labels, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): sorted int64 indices; val holds round(fraction * n_c) images of every
    class c, drawn with a seeded generator; the two are disjoint and cover all images."""
    labels = _labels_array(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hold-out fraction must be in (0, 1), got {fraction}")
    rng = np.random.Generator(np.random.PCG64(seed))
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        val.append(rng.permutation(idx)[: int(round(fraction * len(idx)))])
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[np.concatenate(val)] = True
    return torch.from_numpy(np.flatnonzero(~is_val)), torch.from_numpy(np.flatnonzero(is_val))


def _resnet34(weights: str):
    """torchvision ResNet-34 with the ImageNet weights from torch hub's checkpoint folder, or
    randomly initialised with a fixed seed (tests, smoke preset)."""
    from torchvision.models import ResNet34_Weights, resnet34

    if weights == "random":
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            return resnet34(weights=None)
    if weights != "imagenet":
        raise ValueError(f"unknown feature weights {weights!r}; choices: {', '.join(FEATURE_WEIGHTS)}")
    url = ResNet34_Weights.IMAGENET1K_V1.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    model = resnet34(weights=None)
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        try:
            state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False,
                                                       check_hash=True)
        except Exception as err:
            raise RuntimeError(
                f"the ImageNet ResNet-34 weights are not on this machine and the download failed "
                f"(offline?): {err}. Fetch {url} elsewhere and place it at {path} (or set "
                f"TORCH_HOME); `weights: random` runs without them (tests, smoke).") from err
    model.load_state_dict(state)
    return model


@torch.no_grad()
def extract_features(images: torch.Tensor, *, weights: str, image_size: int = 224, device="cpu",
                     batch_size: int = 256, progress=None) -> torch.Tensor:
    """N x 512 float32 features of a frozen ResNet-34 (fc removed), images N x 3 x H x W uint8
    resized to image_size (bilinear, antialiased) and ImageNet-normalised. progress: a callable
    given a line about every 10% of the batches."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images N x 3 x H x W, got {images.dtype} {tuple(images.shape)}")
    model = _resnet34(weights)
    model.fc = torch.nn.Identity()
    model.eval().to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    total = math.ceil(len(images) / batch_size)
    every = max(1, math.ceil(total / 10))
    out = []
    for i in range(total):
        x = images[i * batch_size:(i + 1) * batch_size].to(device).float() / 255.0
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=True)
        out.append(model((x - mean) / std).float().cpu())
        if progress is not None and ((i + 1) % every == 0 or i + 1 == total):
            progress(f"features: {i + 1}/{total} batches")
    return torch.cat(out) if out else torch.empty(0, 512)


class SetBatches:
    """Training batches (x: B x set_size x F, y: B) of fixed sets, shuffled per epoch by a generator
    seeded with (seed, epoch) as the trainer's TensorBatches: the batch of any global step is a pure
    function of (seed, step), so a resumed run sees the same data. Drops the last partial batch."""

    def __init__(self, features: torch.Tensor, members: torch.Tensor, target: torch.Tensor,
                 batch_size: int, seed: int):
        if members.dim() != 2 or target.shape != members.shape[:1]:
            raise ValueError(f"members {tuple(members.shape)} and target {tuple(target.shape)} "
                             "do not describe the same sets")
        self.features, self.members, self.target = features, members, target
        self.batch_size, self.seed = batch_size, seed
        self.n_sets = len(members)
        self.steps_per_epoch = self.n_sets // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{self.n_sets} training sets make no batch of {batch_size}")

    def epoch(self, epoch: int, start: int = 0):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.n_sets, generator=gen)
        for i in range(start, self.steps_per_epoch):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.features[self.members[idx]], self.target[idx]

    def batches(self, start_step: int = 0):
        """Endless batches of the global steps start_step, start_step + 1, ..."""
        epoch, start = divmod(start_step, self.steps_per_epoch)
        while True:
            yield from self.epoch(epoch, start)
            epoch, start = epoch + 1, 0


def set_eval_batches(features: torch.Tensor, members: torch.Tensor, target: torch.Tensor,
                     batch_size: int):
    """A zero-argument callable returning the (x, y) batches of all sets, in order (validation/test)."""
    def batches():
        for i in range(0, len(members), batch_size):
            yield features[members[i:i + batch_size]], target[i:i + batch_size]

    return batches
