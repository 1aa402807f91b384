"""Effort levels and the search settings a caller chooses (``effort``, ``lmbda``, ``distortion``).

Every level runs the same recipe (REPORT of the research behind it: Adam on the latent in
quantizer-step units through the real decoder, straight-through rounding, a cosine
learning-rate decay, the best rounded point kept); only the number of decoder passes
grows.  Levels are separate runs, each with its own schedule: the first 8 steps of a
50-step run are worse than an 8-step run.  Effort 0 is the plain encoder.

>>> SearchSettings(effort="max").steps == EFFORTS[MAX_EFFORT]
True
>>> SearchSettings(effort=2, distortion="mix").relative_lambda
0.05
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import StageConfigError

#: Effort level -> search steps (decoder forward + backward passes).  On 2 idle CPU cores a
#: step at 768x512 costs about 0.8-1.1 s (bf16), so 8 / 20 / 50 steps are about 10 / 22 / 52 s
#: per Kodak image with the final encode (README, "Encoder search").
EFFORTS: dict[int, int] = {0: 0, 1: 8, 2: 20, 3: 50}
MAX_EFFORT = max(EFFORTS)
#: The distortions the search can minimise (``mix``: MSE and MS-SSIM, each relative to the plain encode's).
DISTORTIONS = ("mse", "ms-ssim", "mix")
#: Default ``lmbda`` per distortion: the loss is ``lmbda * D / D0 + bpp``, ``D0`` the plain encode's.
DEFAULT_LAMBDA = {"mse": 0.1, "ms-ssim": 0.1, "mix": 0.05}


@dataclass(frozen=True)
class Recipe:
    """What every effort level shares (tuned on training photos, never on Kodak)."""

    #: Adam's step in *latent* units (``lr_latent / step`` in symbol units): one value fits every quantizer step.
    lr_latent: float = 0.07
    #: Cosine decay of the learning rate to this fraction of it.
    lr_end: float = 0.1
    #: Recompute ``z = round(h_a(round(u)))`` of the hyperprior's rate twin every this many steps.
    z_every: int = 10
    #: bf16 autocast of the decoder's forward and backward where the CPU or GPU has native bf16
    #: (about 2x faster on an AVX512-BF16 CPU, about 0.6 BD-rate points of quality lost); the final
    #: encode and every decode stay in the transform's own precision.
    bf16: bool = True


RECIPE = Recipe()


def parse_effort(value: Any) -> int:
    """An effort level: ``0..MAX_EFFORT`` or ``"max"`` (CLI text or Python value)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "max":
            return MAX_EFFORT
        try:
            value = int(text)
        except ValueError:
            raise StageConfigError(f"effort must be an integer 0..{MAX_EFFORT} or 'max', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value not in EFFORTS:
        raise StageConfigError(f"effort must be an integer 0..{MAX_EFFORT} or 'max', got {value!r}")
    return value


@dataclass(frozen=True)
class SearchSettings:
    """How hard and towards what the encoder searches.

    ``effort``: ``0..MAX_EFFORT`` or ``"max"`` (0: the plain encoder, no search);
    ``lmbda``: the weight of the relative distortion in ``lmbda * D / D0 + bpp`` (None: the
    distortion's default, :data:`DEFAULT_LAMBDA`; larger buys quality with bytes);
    ``distortion``: one of :data:`DISTORTIONS`; ``progress``: a tqdm bar on stderr.
    """

    effort: int | str = 0
    lmbda: float | None = None
    distortion: str = "mse"
    progress: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "effort", parse_effort(self.effort))
        if self.distortion not in DISTORTIONS:
            raise StageConfigError(f"distortion must be one of {', '.join(DISTORTIONS)}, got {self.distortion!r}")
        if self.lmbda is not None:
            if isinstance(self.lmbda, bool) or not isinstance(self.lmbda, (int, float)) or not 0 < float(self.lmbda) < 1e6:
                raise StageConfigError(f"lmbda must be a positive number, got {self.lmbda!r}")
            object.__setattr__(self, "lmbda", float(self.lmbda))

    @property
    def steps(self) -> int:
        return EFFORTS[int(self.effort)]

    @property
    def relative_lambda(self) -> float:
        return self.lmbda if self.lmbda is not None else DEFAULT_LAMBDA[self.distortion]
