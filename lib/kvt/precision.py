"""Numeric precision of a job's matmuls: the `precision` config key.

    fp32  float32 throughout, TF32 off: the numbers of the paper's code on any device (default)
    tf32  float32 storage, matmuls and convolutions in TensorFloat-32 on NVIDIA GPUs (Ampere and
          later); on a CPU the same as fp32
    bf16  autocast to bfloat16 for matmuls (weights, optimizer state and the loss stay float32;
          bfloat16 keeps float32's range, so no loss scaling), the rest in TF32 on a GPU

The forward pass and loss run inside `autocast(...)`; the backward pass follows the forward's
dtypes by itself.
"""

import contextlib

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def configure(precision: str) -> None:
    """Set the process-wide TF32 switches that `precision` implies (CUDA only reads them)."""
    tf32 = check(precision) != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def autocast(precision: str, device) -> contextlib.AbstractContextManager:
    """The context a forward pass (and its loss) runs in."""
    if check(precision) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
