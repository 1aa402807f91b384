"""Probability of integer symbols under the training's float models, through public APIs only.

Training needs the exact probability mass of *integer* symbols.  CompressAI's
``EntropyBottleneck.forward(x, training=False)`` gives it: it rounds ``x`` around the
bottleneck's medians, and those stay 0 here (the ``quantiles`` are never trained: no
auxiliary loss), so an integer ``x`` passes unchanged.  The bottlenecks are built with
``likelihood_bound=0`` so ``forward`` returns the unbounded mass; the training applies
its own bounds.  The Gaussian mass is the few lines of CompressAI's
``GaussianConditional`` likelihood (``|y - mean|``, erfc), written out here with the same
operations in the same order, so the numbers are unchanged bit for bit.
"""

from __future__ import annotations

from typing import Any

#: CompressAI's ``GaussianConditional`` default lower bound on the scale.
SCALE_BOUND = 0.11
#: The smallest likelihood the loss sees (CompressAI's default ``likelihood_bound``).
LIKELIHOOD_BOUND = 1e-9


def check_zero_medians(eb: Any) -> None:
    """Raise unless the bottleneck's medians are 0 (what :func:`factorized_likelihood` needs)."""
    if bool(eb.quantiles[:, :, 1].detach().any()):
        from ..errors import ModelError

        raise ModelError("an entropy bottleneck's medians are not 0: its likelihood of integers would be shifted")


def factorized_likelihood(eb: Any, x: Any) -> Any:
    """Exact likelihood of integer-valued ``x (B, C, H, W)`` under an EntropyBottleneck.

    Returned as a ``(B, C, H, W)`` view of channel-major memory, the layout the training
    has always summed its bits in (a float sum depends on its order).
    """
    _, likelihood = eb(x, training=False)
    return likelihood.transpose(0, 1).contiguous().transpose(0, 1)


def gaussian_likelihood(y: Any, mean: Any, scale: Any, scale_bound: Any) -> Any:
    """Mass of the unit bin around ``y`` under ``N(mean, scale_bound(scale))``.

    ``scale_bound`` is a ``compressai.ops.LowerBound(SCALE_BOUND)``, whose gradient still
    pulls a scale below the bound back up.
    """
    import torch

    values = torch.abs(y - mean)
    scale = scale_bound(scale)
    const = float(-(2**-0.5))
    upper = 0.5 * torch.erfc(const * ((0.5 - values) / scale))
    lower = 0.5 * torch.erfc(const * ((-0.5 - values) / scale))
    return upper - lower
