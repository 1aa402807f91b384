"""``vae``: decode the dequantized latent with the transform's synthesis, nothing more."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..stages import RefineContext, Refiner, Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch


class VAERefiner(Refiner):
    """The plain decoder; crops the padded decode back to the image size."""

    name: ClassVar[str] = "vae"
    version: ClassVar[int] = 1

    def __init__(self) -> None:
        pass

    def refine(self, latent: torch.Tensor, transform: Transform, context: RefineContext) -> torch.Tensor:
        width, height = context.image_size
        return transform.synthesis(latent)[..., :height, :width]
