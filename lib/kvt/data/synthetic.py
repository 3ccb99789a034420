"""The five synthetic sequence tasks: i.i.d. digits 0..9 in, a per-position target out.

Data come from numpy's PCG64 seeded with (seed, split), whose stream is fixed across machines
and numpy versions for `integers`, so the same seed gives the same data everywhere (the
reference drew from the unseeded global RNG).
"""

import numpy as np
import torch

NUM_CLASSES = 10
SPLITS = ("train", "val", "test")


def _reverse(x):
    return x.flip(-1)


def _sort(x):
    return x.sort(dim=-1).values


def _swap(x):
    half = x.shape[-1] // 2
    return torch.cat((x[..., half:], x[..., :half]), dim=-1)


def _sub(x):
    return NUM_CLASSES - 1 - x


def _copy(x):
    return x.clone()


TASKS = {"reverse": _reverse, "sort": _sort, "swap": _swap, "sub": _sub, "copy": _copy}


def make_split(task: str, split: str, size: int, seq_len: int, seed: int):
    """(inputs, targets): two size x seq_len int64 tensors of task `task`, split `split`."""
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; known: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if seq_len % 2 and task == "swap":
        raise ValueError(f"swap needs an even seq_len, got {seq_len}")
    rng = np.random.Generator(np.random.PCG64([seed, SPLITS.index(split)]))
    x = torch.from_numpy(rng.integers(0, NUM_CLASSES, size=(size, seq_len), dtype=np.int64))
    return x, TASKS[task](x)
