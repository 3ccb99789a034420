"""Key-Value Transformer (Borji, 2023): attention variants, models and training for the study.

The attention names load lazily, so the config and report modules start without torch.
"""

__version__ = "0.1.0"
__all__ = ["ATTENTION", "build_attention", "make_mask", "register"]


def __getattr__(name):
    if name in __all__:
        from . import attention

        return getattr(attention, name)
    raise AttributeError(f"module 'kvt' has no attribute {name!r}")
