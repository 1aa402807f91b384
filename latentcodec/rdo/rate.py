"""What the search asks of an entropy coder: a differentiable estimate of its code length.

An :class:`~latentcodec.stages.EntropyCoder` offers one through
:meth:`~latentcodec.stages.EntropyCoder.rate_model` (None: it cannot steer a search).
The estimate only steers: the stream is always made by the real coder, so a loose
estimate costs quality of the search, never correctness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch


@runtime_checkable
class RateModel(Protocol):
    """Bits of symbols ``y_hat`` ``(1, C, h, w)`` (float tensors on the search's device).

    ``begin(y0)`` is called once with the plain encoder's symbols; ``bits(y_hat, step)`` at
    every search step with the straight-through-rounded symbols (their values are
    integers, their gradient is the latent's), and returns a differentiable scalar.
    """

    def begin(self, y0: "torch.Tensor") -> None: ...

    def bits(self, y_hat: "torch.Tensor", step: int) -> "torch.Tensor": ...
