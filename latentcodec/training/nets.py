"""The float networks a prior training run optimises, and the code length they give a batch.

One ``nn.Module`` holds them all, so they move to a device and save and load as one
``state_dict``: the hyper-analysis ``h_a``, the hyper-synthesis ``h_s``
(:func:`~latentcodec.entropy.hyperprior.synthesis.torch_hyper_synthesis`), the
``EntropyBottleneck`` of ``z`` and the one of the factorized prior ``eb_y``, and the
context networks ``ctx`` (none with 0 phases).  They are built in this order from the
seeded torch RNG, so a seed gives the same initial weights in every version.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..entropy.hyperprior import context as hc
from ..entropy.hyperprior import synthesis as hp
from .likelihood import LIKELIHOOD_BOUND, SCALE_BOUND, check_zero_medians, factorized_likelihood, gaussian_likelihood
from .settings import PriorSettings

#: The log-scales the exported tables cover (natural-log units), so training sees what decoding uses.
LOG_SCALE_RANGE = (hp.LOG_SCALE_MIN_F, hp.LOG_SCALE_MIN_F + hp.LOG_SCALE_STEP_F * (hp.NUM_SCALES - 1))


def hyper_analysis(channels: int, n: int, z_channels: int) -> nn.Sequential:
    """``y -> z`` at 1/4 resolution: conv3, ReLU, conv5 /2, ReLU, conv5 /2 (encoder only)."""
    return nn.Sequential(
        nn.Conv2d(channels, n, 3, padding=1), nn.ReLU(),
        nn.Conv2d(n, n, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(n, z_channels, 5, stride=2, padding=2),
    )


class PriorNets(nn.Module):
    """Both priors' float networks for ``channels`` latent channels and resolved ``settings``."""

    def __init__(self, channels: int, settings: PriorSettings) -> None:
        from compressai.entropy_models import EntropyBottleneck
        from compressai.ops import LowerBound

        super().__init__()
        s = settings
        self.channels, self.settings, self.order = channels, s, list(range(channels))
        self.h_a = hyper_analysis(channels, s.n, s.z_channels)
        self.h_s = hp.torch_hyper_synthesis(channels, s.n, s.z_channels)
        self.eb_z = EntropyBottleneck(s.z_channels, likelihood_bound=0)
        self.eb_y = EntropyBottleneck(channels, likelihood_bound=0)
        assert s.kernel2 is not None and s.kernel3 is not None, "settings must be resolved"
        self.ctx = hc.torch_context(channels, s.phases, s.hidden, s.kernel, s.all_hyper, s.kernel2, s.kernel3) if s.phases else None
        self.likelihood_bound = LowerBound(LIKELIHOOD_BOUND)
        self.scale_bound = LowerBound(SCALE_BOUND)
        for eb in (self.eb_z, self.eb_y):
            eb.quantiles.requires_grad_(False)  # the medians stay 0 (see .likelihood)

    def trainable(self) -> list[nn.Parameter]:
        """The optimised parameters, in a fixed order (the optimizer's state follows it)."""
        nets = [self.h_a, self.h_s, *([self.ctx] if self.ctx is not None else [])]
        params = [p for m in nets for p in m.parameters()]
        return params + [p for eb in (self.eb_z, self.eb_y) for name, p in eb.named_parameters() if not name.endswith("quantiles")]

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict, assign)
        check_zero_medians(self.eb_z)
        check_zero_medians(self.eb_y)
        return result

    def bits(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hyperprior, factorized)`` bits per symbol of integer symbols ``y (B, C, h, w)``.

        ``z`` is trained with additive uniform noise; ``y``'s Gaussians see the scales the
        exported tables cover; the context networks are trained with teacher forcing.
        """
        s = self.settings
        count = y.numel()
        z_tilde, z_lik = self.eb_z(self.h_a(y), training=True)
        mean, log_scale = self.h_s(z_tilde).chunk(2, dim=1)
        if self.ctx is not None:
            mean, log_scale = hc.torch_context_forward(self.ctx, y, mean, log_scale, s.phases, self.order, s.all_hyper)
        y_lik = gaussian_likelihood(y, mean, torch.exp(log_scale.clamp(*LOG_SCALE_RANGE)), self.scale_bound)
        bound = self.likelihood_bound
        bits_hyper = (-torch.log2(bound(y_lik)).sum() - torch.log2(bound(z_lik)).sum()) / count
        bits_fact = -torch.log2(factorized_likelihood(self.eb_y, y).clamp_min(LIKELIHOOD_BOUND)).sum() / count
        return bits_hyper, bits_fact
