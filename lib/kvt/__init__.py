"""Key-Value Transformer (Borji, 2023): attention variants, models and training for the study."""

from .attention import ATTENTION, build_attention, make_mask, register

__all__ = ["ATTENTION", "build_attention", "make_mask", "register"]
__version__ = "0.1.0"
