"""``ddim-inversion``: partial DDIM inversion and regeneration (Jin et al. 2023).

The dequantized latent (optionally decoded and re-encoded by the transform, which
projects it back onto the encoder's range) is inverted with deterministic DDIM
(``DDIMInverseScheduler``, eta = 0, the empty prompt with guidance w = 1) up to
timestep ~``strength * 1000``, not to full noise, then regenerated with DDIM sampling
under the same conditioning over the same grid.  The model pulls the latent towards
natural images while the inversion keeps it anchored to the stream's content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import StageConfigError
from ..stages import RefineContext, Transform
from .diffusion import Control, DiffusionRefiner, _float_in, partial_ddim_roundtrip

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_STRENGTH = 0.3


class DDIMInversionRefiner(DiffusionRefiner):
    """Invert ``round(steps * strength)`` of ``steps`` DDIM steps, then sample them back.

    Options: ``strength`` (fraction of the schedule inverted, default 0.3), ``steps``
    (grid of the full schedule, default 50), ``reencode`` (decode + re-encode first).
    """

    name: ClassVar[str] = "ddim-inversion"
    version: ClassVar[int] = 1
    runtime_options = DiffusionRefiner.runtime_options | {"strength", "reencode"}

    def __init__(self, strength: float = DEFAULT_STRENGTH, reencode: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strength = _float_in(strength, "strength", 0.0, 1.0, self.name)
        if self.strength == 0.0:
            raise StageConfigError(f"{self.name}: strength must be > 0 (use --refiner vae for none)")
        if not isinstance(reencode, bool):
            raise StageConfigError(f"{self.name}: reencode must be true or false")
        self.reencode = reencode

    def control(self, latent: torch.Tensor, transform: Transform, context: RefineContext) -> Control | None:
        """Guidance added during sampling; none here."""
        return None

    def refine_latent(self, latent: torch.Tensor, transform: Transform, context: RefineContext) -> torch.Tensor:
        if self.reencode:
            latent = transform.analysis(transform.synthesis(latent))
        return partial_ddim_roundtrip(
            self.sd,
            latent,
            steps=self.steps,
            strength=self.strength,
            eta=self.eta,
            seed=self.seed,
            control=self.control(latent, transform, context),
            quiet=self.quiet,
        )
