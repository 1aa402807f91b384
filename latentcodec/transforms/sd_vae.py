"""``sd-vae``: the Stable Diffusion VAE (diffusers ``AutoencoderKL``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import StageConfigError
from ..hub import load_pretrained
from .base import TorchAutoencoderTransform

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_SD_VAE = "stabilityai/sd-vae-ft-mse"


class SDVAETransform(TorchAutoencoderTransform):
    """Any SD 1.x/2.x/XL ``AutoencoderKL``; constants come from the model's config.

    The latent is the posterior mean by default (deterministic); ``sample=True`` draws
    from the posterior with a ``torch.Generator`` seeded with ``seed``.
    """

    name: ClassVar[str] = "sd-vae"
    version: ClassVar[int] = 1
    runtime_options = TorchAutoencoderTransform.runtime_options | {"sample", "seed", "subfolder"}

    def __init__(
        self,
        model: str = DEFAULT_SD_VAE,
        sample: bool = False,
        seed: int = 0,
        subfolder: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=model, **kwargs)
        if not isinstance(sample, bool):
            raise StageConfigError("sd-vae: sample must be true or false")
        self.sample = sample
        self.seed = int(seed)
        self.subfolder = subfolder

    def _load(self) -> torch.nn.Module:
        from diffusers import AutoencoderKL

        kwargs = {"subfolder": self.subfolder} if self.subfolder else {}
        return load_pretrained(AutoencoderKL.from_pretrained, self.model, what="SD VAE", **kwargs).float()

    @property
    def downsampling_factor(self) -> int:
        # The encoder halves the resolution between consecutive down blocks.
        return 2 ** (len(self._cfg.block_out_channels) - 1)

    def _shift(self) -> float:
        return float(getattr(self._cfg, "shift_factor", None) or 0.0)

    def _encode(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        import torch

        dist = module.encode(x).latent_dist
        if self.sample:
            gen = torch.Generator(device=x.device).manual_seed(self.seed)
            z = dist.sample(generator=gen)
        else:
            z = dist.mean
        return (z - self._shift()) * float(self._cfg.scaling_factor)

    def _decode(self, module: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
        return module.decode(z / float(self._cfg.scaling_factor) + self._shift()).sample
