"""Seeds: their range, and the seeds derived from them, in one place.

A seed (a run's, a section's, a split's) is an integer in [0, SEED_MAX]: numpy's global seeding
(kvt.trainer.seed_everything) takes no larger, and the configuration's schema refuses any other.

A run also seeds generators per epoch (data order) and per step (augmentation, text offsets,
fresh anomaly sets) with `derived(seed, stride, k)` = seed * stride + k. These stay in range:
torch.Generator.manual_seed takes [0, 2^64 - 1], and SEED_MAX * STEP_STRIDE < 2^52, so k may
be any count below 2^63 (a step or epoch count never comes near). The strides are odd primes,
so seed * stride is distinct for distinct seeds (odd numbers are invertible modulo 2^64).
"""

SEED_MAX = 2**32 - 1
EPOCH_STRIDE = 100_003  # the data order of epoch e: derived(seed, EPOCH_STRIDE, e)
STEP_STRIDE = 1_000_003  # the random draws of global step s: derived(seed, STEP_STRIDE, s)
GENERATOR_MAX = 2**64 - 1  # torch.Generator.manual_seed's largest seed


def check_seed(seed: int, what: str = "seed") -> int:
    """seed, an int in [0, SEED_MAX], or a ValueError naming `what`."""
    if isinstance(seed, bool) or int(seed) != seed or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{what}={seed!r} is not an integer in [0, {SEED_MAX}] (2^32 - 1)")
    return int(seed)


def derived(seed: int, stride: int, k: int) -> int:
    """The seed of the k-th generator of `seed` (an epoch's, a step's): seed * stride + k."""
    out = check_seed(seed) * stride + k
    if not 0 <= out <= GENERATOR_MAX:  # unreachable for k < 2^63; said, not assumed
        raise ValueError(f"derived seed {seed} * {stride} + {k} is outside [0, 2^64 - 1]")
    return out
