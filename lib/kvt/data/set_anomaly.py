"""Set anomaly detection on CIFAR-100 (UvA tutorial 6): sets of images, one of them from another class.

Sets are index arrays into a frozen-feature table. Validation and test sets are fixed by a seed
(numpy PCG64), so every variant and seed sees the same sets; training sets are drawn afresh for
every item read, as in the tutorial, from a generator seeded by (seed, step) (FreshSetBatches), or
fixed like the others (SetBatches). Unlike the tutorial, the odd one sits at a uniformly random
position: a model with positional information could otherwise learn "the last one".
"""

import math
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

from ..seeds import EPOCH_STRIDE, derived
from .facts import holdout_size

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_WEIGHTS = ("imagenet", "random")
RANDOM_WEIGHTS_SEED = 0


def _labels_array(labels) -> np.ndarray:
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1D integer array, got shape {labels.shape} {labels.dtype}"
        )
    return labels.astype(np.int64)


class SetSampler:
    """Draws sets of set_size images of `labels` around given odd ones (the tutorial's
    `sample_img_set`): the set's class uniform over the classes other than the odd one's, its
    set_size - 1 distinct images uniform within that class, and every row shuffled, so the odd one's
    position is uniform over 0..set_size-1. Vectorised over the sets: one call per batch."""

    def __init__(self, labels, set_size: int):
        labels = _labels_array(labels)
        if set_size < 2:
            raise ValueError(f"a set needs at least 2 elements, got set_size={set_size}")
        classes, self.cls, self.counts = np.unique(labels, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise ValueError(f"sets need images of at least 2 classes, got {len(classes)}")
        self.set_size, self.n_classes, k = set_size, len(classes), set_size - 1
        if self.counts.min() < k:
            small = classes[self.counts < k]
            raise ValueError(
                f"class(es) {small[:10].tolist()} have fewer than set_size-1={k} images "
                f"(smallest: {self.counts.min()})"
            )
        self.by_class = np.argsort(self.cls, kind="stable")  # image indices grouped by class
        self.starts = np.concatenate(([0], np.cumsum(self.counts)[:-1]))

    def draw(self, rng: np.random.Generator, odd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(members, target): len(odd) x set_size int64 image indices and the odd one's positions."""
        n_sets, k = len(odd), self.set_size - 1
        set_cls = rng.integers(0, self.n_classes - 1, size=n_sets)
        set_cls += set_cls >= self.cls[odd]
        # k distinct images of the set class: Floyd's algorithm, vectorised over the sets.
        size = self.counts[set_cls]
        local = np.empty((n_sets, k), dtype=np.int64)
        for s in range(k):
            j = size - k + s
            t = rng.integers(0, j + 1)
            taken = (local[:, :s] == t[:, None]).any(axis=1)
            local[:, s] = np.where(taken, j, t)
        rows = np.concatenate(
            (self.by_class[self.starts[set_cls][:, None] + local], odd[:, None]), axis=1
        )
        # Shuffle each row; the odd one (last column before the shuffle) lands uniformly anywhere.
        perm = np.argsort(rng.random((n_sets, self.set_size)), axis=1)
        members = np.take_along_axis(rows, perm, axis=1)
        return members, np.argmax(perm == k, axis=1).astype(np.int64)


def make_sets(labels, n_sets: int, set_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(members, target): n_sets x set_size int64 indices into `labels` and the n_sets positions of
    the odd one out (SetSampler's sets).

    As in the tutorial, the odd ones cycle through seeded permutations of all images (each image is
    the odd one equally often). A pure function of (labels, n_sets, set_size, seed).
    """
    sampler = SetSampler(labels, set_size)
    if n_sets < 1:
        raise ValueError(f"n_sets must be positive, got {n_sets}")
    rng = np.random.Generator(np.random.PCG64(seed))
    n = len(sampler.cls)
    odd = np.concatenate([rng.permutation(n) for _ in range(math.ceil(n_sets / n))])[:n_sets]
    members, target = sampler.draw(rng, odd)
    return torch.from_numpy(members), torch.from_numpy(target)


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
        val.append(rng.permutation(idx)[: holdout_size(len(idx), fraction)])
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
        raise ValueError(
            f"unknown feature weights {weights!r}; choices: {', '.join(FEATURE_WEIGHTS)}"
        )
    url = ResNet34_Weights.IMAGENET1K_V1.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    model = resnet34(weights=None)
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        try:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=False, check_hash=True
            )
        except Exception as err:
            raise RuntimeError(
                f"the ImageNet ResNet-34 weights are not on this machine and the download failed "
                f"(offline?): {err}. Fetch {url} elsewhere and place it at {path} (or set "
                f"TORCH_HOME); `weights: random` runs without them (tests, smoke)."
            ) from err
    model.load_state_dict(state)
    return model


@torch.no_grad()
def extract_features(
    images: torch.Tensor,
    *,
    weights: str,
    image_size: int = 224,
    device="cpu",
    batch_size: int = 256,
    progress=None,
) -> torch.Tensor:
    """N x 512 float32 features of a frozen ResNet-34 (fc removed), images N x 3 x H x W uint8
    resized to image_size (bilinear, antialiased) and ImageNet-normalised. progress: a callable
    given a line about every 10% of the batches."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images N x 3 x H x W, got {images.dtype} {tuple(images.shape)}"
        )
    model = _resnet34(weights)
    model.fc = torch.nn.Identity()
    model.eval().to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    total = math.ceil(len(images) / batch_size)
    every = max(1, math.ceil(total / 10))
    out = []
    for i in range(total):
        x = images[i * batch_size : (i + 1) * batch_size].to(device).float() / 255.0
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        out.append(model((x - mean) / std).float().cpu())
        if progress is not None and ((i + 1) % every == 0 or i + 1 == total):
            progress(f"features: {i + 1}/{total} batches")
    return torch.cat(out) if out else torch.empty(0, 512)


class _SetEpochs:
    """Training batches (x: B x set_size x F, y: B) of n_items items per epoch, shuffled per epoch
    by a generator seeded with (seed, epoch) as the trainer's TensorBatches: the batch of any global
    step is a pure function of (seed, step), so a resumed run sees the same data. Drops the last
    partial batch (the tutorial's loader too). Subclasses turn a step's item indices into a batch."""

    def __init__(self, features: torch.Tensor, n_items: int, batch_size: int, seed: int):
        self.features, self.batch_size, self.seed, self.n_items = (
            features,
            batch_size,
            seed,
            n_items,
        )
        self.steps_per_epoch = n_items // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n_items} training sets make no batch of {batch_size}")

    def to(self, device):
        """Keep the features on `device` (the trainer calls this): a step then copies only the
        index tensors (non-blocking) and gathers the features there. The indices are drawn on
        the CPU as before, so the batches are the same on every device."""
        self.features = self.features.to(device)
        return self

    def _on_device(self, members: torch.Tensor, target: torch.Tensor):
        device = self.features.device
        return (
            self.features[members.to(device, non_blocking=True)],
            target.to(device, non_blocking=True),
        )

    def epoch(self, epoch: int, start: int = 0):
        gen = torch.Generator().manual_seed(derived(self.seed, EPOCH_STRIDE, epoch))
        order = torch.randperm(self.n_items, generator=gen)
        for i in range(start, self.steps_per_epoch):
            yield self._batch(
                order[i * self.batch_size : (i + 1) * self.batch_size],
                epoch * self.steps_per_epoch + i,
            )

    def batches(self, start_step: int = 0):
        """Endless batches of the global steps start_step, start_step + 1, ..."""
        epoch, start = divmod(start_step, self.steps_per_epoch)
        while True:
            yield from self.epoch(epoch, start)
            epoch, start = epoch + 1, 0


class SetBatches(_SetEpochs):
    """Batches of fixed sets (members, target as make_sets gives them), the same every epoch in
    another order (`resample_train: false`)."""

    def __init__(
        self,
        features: torch.Tensor,
        members: torch.Tensor,
        target: torch.Tensor,
        batch_size: int,
        seed: int,
    ):
        if members.dim() != 2 or target.shape != members.shape[:1]:
            raise ValueError(
                f"members {tuple(members.shape)} and target {tuple(target.shape)} "
                "do not describe the same sets"
            )
        super().__init__(features, len(members), batch_size, seed)
        self.members, self.target = members, target

    def _batch(self, idx: torch.Tensor, step: int):
        return self._on_device(self.members[idx], self.target[idx])


class FreshSetBatches(_SetEpochs):
    """Batches of sets drawn afresh every time an item is read, as the tutorial's training
    SetAnomalyDataset: an epoch has one item per image, in a new order, each image the odd one of
    its item, and the rest of the set (class, images, the odd one's position) drawn by a
    SetSampler from a generator seeded by (seed, step) alone, each item from its own place in the
    batch's vectorised draws. So a step's batch is a pure function of (seed, step) however the run
    got there (resumed or not)."""

    def __init__(self, features: torch.Tensor, sampler: SetSampler, batch_size: int, seed: int):
        if len(features) != len(sampler.cls):
            raise ValueError(f"{len(features)} feature vectors for {len(sampler.cls)} labels")
        super().__init__(features, len(features), batch_size, seed)
        self.sampler = sampler

    def step_generator(self, step: int) -> np.random.Generator:
        """The generator of a step's draws: spawn_key keeps it apart from every other seed's and
        step's streams, and from the fixed sets' generators (plain integer seeds)."""
        return np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(step,)))
        )

    def _batch(self, odd: torch.Tensor, step: int):
        members, target = self.sampler.draw(self.step_generator(step), odd.numpy())
        return self._on_device(torch.from_numpy(members), torch.from_numpy(target))


def set_eval_batches(
    features: torch.Tensor, members: torch.Tensor, target: torch.Tensor, batch_size: int
):
    """A zero-argument callable returning the (x, y) batches of all sets, in order (validation/test)."""

    def batches():
        for i in range(0, len(members), batch_size):
            yield features[members[i : i + batch_size]], target[i : i + batch_size]

    return batches
