"""``unet-denoise``: treat quantization error as diffusion noise and denoise it (Bühlmann 2022).

A dequantized latent is ``z = z0 + e`` with ``std(e) = sigma``, which the stream's
quantizer reports (``step / sqrt(12)`` for a uniform step).  Scaled by ``sqrt(abar_t)``
it looks like a diffusion sample at the timestep where ``sqrt((1 - abar_t) / abar_t)``
equals ``sigma``, so the last few DDIM steps of an SD UNet (empty prompt) from there
remove the error; the transform's synthesis then decodes the result.  No fresh noise
is added (eta = 0 by default), so the decode is deterministic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from ..stages import RefineContext, Transform
from .diffusion import DiffusionRefiner, _int_in, ddim_sample

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Start timestep when the quantizer cannot estimate its error (e.g. a third-party one).
DEFAULT_START_T = 100


def start_timestep(alphas_cumprod: torch.Tensor, sigma: float) -> int:
    """The timestep whose noise-to-signal ratio ``sqrt((1 - abar) / abar)`` is nearest ``sigma``.

    >>> from diffusers import DDIMScheduler
    >>> abar = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod
    >>> t = start_timestep(abar, 0.5 / 12**0.5)
    >>> ratio = ((1 - abar[t]) / abar[t]).sqrt().item()
    >>> assert abs(ratio - 0.5 / 12**0.5) < 0.01 and start_timestep(abar, 1.0) > t
    """
    import torch

    ratio = ((1.0 - alphas_cumprod.double()) / alphas_cumprod.double()).sqrt()
    t = int(torch.argmin((ratio - float(sigma)).abs()))
    return max(1, min(t, len(alphas_cumprod) - 1))


def denoise_timesteps(start_t: int, steps: int, scheduler_config: dict[str, Any]) -> tuple[Any, list[int]]:
    """A ``DDIMScheduler`` and its grid timesteps at or below ``start_t``, about ``steps`` of them.

    The grid spacing is the largest ``1000 // n`` that still fits ``steps`` points under
    ``start_t``, so the first step starts as close to ``start_t`` as the grid allows.
    """
    from diffusers import DDIMScheduler

    offset = int(scheduler_config.get("steps_offset", 0) or 0)
    train = int(scheduler_config.get("num_train_timesteps", 1000))
    target = max(1, min(steps, start_t - offset + 1))
    for n in range(1, train + 1):
        r = train // n
        if start_t >= offset and (start_t - offset) // r + 1 >= target:
            break
    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(n)
    timesteps = [int(t) for t in scheduler.timesteps if int(t) <= start_t]
    return scheduler, timesteps or [int(scheduler.timesteps[-1])]


class UNetDenoiseRefiner(DiffusionRefiner):
    """Few-step UNet denoising from a start timestep matched to the quantization error.

    Options: ``start_t`` (None: from the quantizer's error, else ``DEFAULT_START_T``),
    ``steps`` (DDIM steps from the start, default 10), plus those of
    :class:`~latentcodec.refiners.diffusion.DiffusionRefiner`.
    """

    name: ClassVar[str] = "unet-denoise"
    version: ClassVar[int] = 1
    runtime_options = DiffusionRefiner.runtime_options | {"start_t"}

    def __init__(self, start_t: int | None = None, steps: int = 10, **kwargs: Any) -> None:
        super().__init__(steps=steps, **kwargs)
        self.start_t = None if start_t is None else _int_in(start_t, "start_t", 1, 999, self.name)
        #: The start timestep and grid of the last refine (for inspection and tests).
        self.last_timesteps: list[int] = []

    def choose_start(self, context: RefineContext) -> int:
        if self.start_t is not None:
            return self.start_t
        sigma = context.quantizer.residual_std(context.side_info) if context.quantizer is not None else None
        if sigma is None or not math.isfinite(sigma) or sigma <= 0:
            return DEFAULT_START_T
        return start_timestep(self.sd.alphas_cumprod, sigma)

    def refine_latent(self, latent: torch.Tensor, transform: Transform, context: RefineContext) -> torch.Tensor:
        import torch

        sd = self.sd
        scheduler, timesteps = denoise_timesteps(self.choose_start(context), self.steps, sd.scheduler_config)
        self.last_timesteps = timesteps
        x = latent.to(sd.device, torch.float32) * float(scheduler.alphas_cumprod[timesteps[0]].sqrt())
        return ddim_sample(sd, x, timesteps, scheduler, eta=self.eta, seed=self.seed, quiet=self.quiet)
