"""Recording what every attention layer of a model computes, for any family's model: the analyses
(diagonal mass, kv_pos's terms, attention galleries) run a model's own forward pass inside
`recording` and read the calls, without a family having to expose its attention maps.

Each SelfAttention module of the model, while recording, runs its manual path (need_weights:
the same function as its SDPA path, docs/attention.md) and appends a `Call` per forward.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .attention import SelfAttention, make_mask


@dataclass
class Call:
    """One forward of one attention module: its name in the model, the module, what it received
    (detached) and its attention maps (batch x heads x m x n, after mask and softmax)."""

    name: str
    module: SelfAttention
    x: torch.Tensor
    context: torch.Tensor | None
    mask: torch.Tensor | None
    causal: bool
    maps: torch.Tensor

    @property
    def is_self(self) -> bool:
        return self.context is None

    def full_mask(self) -> torch.Tensor | None:
        """The additive mask the scores received, causal part included (None: nothing masked)."""
        m, n = self.maps.shape[-2:]
        mask = self.mask
        if self.causal:
            future = make_mask(m, n, causal=True, device=self.maps.device)
            mask = future if mask is None else mask + future
        return mask


@contextmanager
def recording(model, keep_inputs: bool = True):
    """Within the block, every forward of an attention module of `model` appends a Call to the
    list it yields (in call order); its output is what the module returns anyway. keep_inputs
    False: x and context are not kept (None), for long passes that need only the maps."""
    calls: list[Call] = []
    wrapped = []
    for name, module in model.named_modules():
        if not isinstance(module, SelfAttention):
            continue

        def forward(
            x,
            mask=None,
            need_weights=False,
            context=None,
            causal=False,
            *,
            _module=module,
            _name=name,
        ):
            out, maps = type(_module).forward(
                _module, x, mask=mask, need_weights=True, context=context, causal=causal
            )
            calls.append(
                Call(
                    _name,
                    _module,
                    x.detach() if keep_inputs else None,
                    None if context is None else (context.detach() if keep_inputs else context[:0]),
                    None if mask is None else mask.detach(),
                    causal,
                    maps.detach(),
                )
            )
            return (out, maps) if need_weights else out

        module.forward = forward  # an instance attribute: nn.Module.__call__ finds it first
        wrapped.append(module)
    try:
        yield calls
    finally:
        for module in wrapped:
            del module.forward
