"""Config fields and the attention settings every family shares, declared once, torch-free.

`setting` makes a field of a family's config dataclass (kvt.families) with its description,
whether runs receive it, and JSON Schema keywords. `AttentionSettings` holds the settings of the
attention layers (kvt.attention): every family's config derives from it (overriding a default
where its reference differs), and so does every model config, which receives them from the run's
hparams and hands them to build_attention (`attention_options`).
"""

import copy
import dataclasses
from dataclasses import dataclass, field

from .seeds import SEED_MAX

POS_FORMS = ("auto", "channel", "bias")  # kvt.attention.PositionalTerm's forms of the term


def setting(default, doc: str, *, run: bool = True, **schema):
    """A config field: its default, description, whether runs receive it, and schema keywords."""
    meta = {"doc": doc, "run": run, "schema": schema}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def probability_setting(default: float, doc: str):
    """A probability of dropping or smoothing, in [0, 1): at 1 nothing is left to learn from
    (every activation dropped, every target uniform), so 1 is refused, not run."""
    return setting(default, doc + " In [0, 1).", minimum=0, exclusiveMaximum=1)


def seed_setting(default: int, doc: str):
    """A seed of the data (splits, subsets): within kvt.seeds' range, as the runs' seeds."""
    return setting(default, doc, minimum=0, maximum=SEED_MAX)


def scale_setting(default: str):
    return setting(
        default, "Score scale, head (1/sqrt(d/h)) or model (1/sqrt(d)).", enum=["head", "model"]
    )


def pos_dim_setting(default: int):
    return setting(default, "Channels p of the 2D table of kv_pos.", minimum=1)


def pos_per_head_setting(
    default: bool = False, doc: str = "One map_pos per head instead of one per layer."
):
    return setting(default, doc)


def init_setting(default: str):
    return setting(
        default,
        "Initialisation of the attention projections: fused (the reference's "
        "tutorial-6 init: [W_Q; W_K; W_V] or [W_K; W_V] as one xavier-uniform matrix, "
        "W_O xavier, biases zero, map_pos xavier), xavier (each matrix on its own, "
        "map_pos PyTorch's default) or torch (PyTorch's defaults).",
        enum=["fused", "xavier", "torch"],
    )


def sdpa_setting():
    return setting(
        True,
        "Use PyTorch's scaled_dot_product_attention (false: the manual path, "
        "which computes the same attention step by step).",
    )


def pos_form_setting():
    return setting(
        "auto",
        "How the sdpa path adds kv_pos's positional term (docs/attention.md): "
        "channel (one more channel of q and k), bias (an n x n bias into SDPA), or "
        "auto (channel once the keys outnumber twice the head width). The same "
        "numbers up to rounding; a speed choice.",
        enum=list(POS_FORMS),
    )


@dataclass(kw_only=True)
class AttentionSettings:
    """The attention layers' settings (defaults: a family overrides where its reference differs)."""

    scale: str = scale_setting("head")
    pos_dim: int = pos_dim_setting(10)
    pos_per_head: bool = pos_per_head_setting()
    sdpa: bool = sdpa_setting()
    init: str = init_setting("torch")
    pos_form: str = pos_form_setting()

    def attention_options(self) -> dict:
        """The keyword options of kvt.attention.build_attention these settings make."""
        return {
            "scale": self.scale,
            "pos_dim": self.pos_dim,
            "pos_per_head": self.pos_per_head,
            "sdpa": self.sdpa,
            "init": self.init,
            "pos_form": self.pos_form,
        }
