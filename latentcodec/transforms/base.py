"""Shared machinery for torch autoencoder transforms: device, dtype, padding, batching."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from ..errors import StageConfigError, StageInputError
from ..hub import weights_fingerprint
from ..runtime import resolve_device, resolve_dtype
from ..stages import Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch


#: Images above this many pixels (1024 x 1024) are encoded and decoded in tiles.
DEFAULT_TILE_PIXELS = 1024 * 1024


@contextlib.contextmanager
def _tiled(module: Any, on: bool) -> Iterator[None]:
    """Switch diffusers' tiled (and per-sample sliced) encode/decode on for one call."""
    before = (getattr(module, "use_tiling", False), getattr(module, "use_slicing", False))
    module.use_tiling = module.use_slicing = on
    try:
        yield
    finally:
        module.use_tiling, module.use_slicing = before


class TorchAutoencoderTransform(Transform):
    """A transform backed by a lazily loaded ``torch.nn.Module``.

    Subclasses implement :meth:`_load`, :meth:`_encode` and :meth:`_decode` in the
    model's own conventions; this class handles devices, fp16, ``inference_mode``,
    padding to the downsampling factor, conversion to float32 CPU tensors, and tiling:
    images of more than ``tile_pixels`` pixels are encoded and decoded in overlapping
    tiles (diffusers' tiled VAE), so memory stays bounded by the tile, not the image
    (a 4096 x 4096 decode stays within a few GB on the CPU).  Smaller images run in one
    pass, exactly as before.  Tiling only changes pixels in the last bits (blended seams);
    symbols are unaffected on the decoder side.
    """

    runtime_options: ClassVar[frozenset[str]] = frozenset({"model", "device", "dtype", "tile_pixels"})

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", tile_pixels: int = DEFAULT_TILE_PIXELS) -> None:
        if isinstance(tile_pixels, bool) or not isinstance(tile_pixels, int) or tile_pixels < 0:
            raise StageConfigError(f"{self.name}: tile_pixels must be an int >= 0 (0: always tile), got {tile_pixels!r}")
        self.tile_pixels = tile_pixels
        self.model = model
        self.device = device
        self.dtype = dtype
        self._torch_device = resolve_device(device)
        self._torch_dtype = resolve_dtype(dtype, self._torch_device)
        self._module: torch.nn.Module | None = None
        self._fingerprint: bytes | None = None

    # --- subclass hooks ---------------------------------------------------------
    @abstractmethod
    def _load(self) -> torch.nn.Module:
        """Load the float32 model on the CPU."""

    @abstractmethod
    def _encode(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> scaled latent."""

    @abstractmethod
    def _decode(self, module: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
        """Scaled latent -> image in [-1, 1]."""

    # --- lazy model ---------------------------------------------------------------
    @property
    def module(self) -> torch.nn.Module:
        import torch

        if self._module is None:
            # Loaded outside inference mode even when first touched inside it (analysis):
            # inference-mode weights could not serve the encoder search's backward pass.
            with torch.inference_mode(False):
                module = self._load().eval().requires_grad_(False)
                self._fingerprint = weights_fingerprint(module)
                # nn.Module.to, not ModelMixin.to: the latter warns about fp32-pinned modules
                # that these autoencoders do not have.
                self._module = torch.nn.Module.to(module, self._torch_device, self._torch_dtype)
                if self._torch_device.type == "cpu":
                    # oneDNN's channels-last convolutions: about 30 % faster on the CPU (TAESD,
                    # measured), with outputs equal up to float rounding.
                    self._module = self._module.to(memory_format=torch.channels_last)
        return self._module

    @property
    def _cfg(self) -> Any:
        """The diffusers config of the loaded model: the source of every constant."""
        return self.module.config

    @property
    def latent_channels(self) -> int:
        return int(self._cfg.latent_channels)

    def fingerprint(self) -> bytes:
        self.module  # noqa: B018 - loads the model and computes the fingerprint
        assert self._fingerprint is not None
        return self._fingerprint

    # --- contract -------------------------------------------------------------------
    def analysis(self, image: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        if image.dim() != 4 or image.shape[1] != 3:
            raise StageInputError(f"{self.name}: expected an image batch (B, 3, H, W), got {tuple(image.shape)}")
        f = self.downsampling_factor
        h, w = image.shape[-2:]
        pad_h, pad_w = (-h) % f, (-w) % f
        x = image.to(self._torch_device, self._torch_dtype) * 2.0 - 1.0
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        with torch.inference_mode(), _tiled(self.module, self._tiles(x.shape[-2] * x.shape[-1])):
            z = self._encode(self.module, x)
        return z.to("cpu", torch.float32)

    def _tiles(self, pixels: int) -> bool:
        return pixels > self.tile_pixels

    def _latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() != 4 or latent.shape[1] != self.latent_channels:
            raise StageInputError(
                f"{self.name}: expected a latent (B, {self.latent_channels}, h, w), got {tuple(latent.shape)}"
            )
        return latent.to(self._torch_device, self._torch_dtype)

    def _decode_tiled(self, z: torch.Tensor) -> Any:
        f = self.downsampling_factor
        return _tiled(self.module, self._tiles(z.shape[-2] * z.shape[-1] * f * f))

    def synthesis(self, latent: torch.Tensor) -> torch.Tensor:
        import torch

        z = self._latent_in(latent)
        with torch.inference_mode(), self._decode_tiled(z):
            x = self._decode(self.module, z).float()
            # in place: a 4096 x 4096 image is 200 MB per float copy
            return x.add_(1.0).mul_(0.5).clamp_(0.0, 1.0).to("cpu")

    # --- encoder search (latentcodec.rdo) ---------------------------------------------
    differentiable: ClassVar[bool] = True

    def differentiable_synthesis(self, latent: torch.Tensor) -> torch.Tensor:
        import torch

        z = self._latent_in(latent)
        if z.device.type == "cpu":
            z = z.contiguous(memory_format=torch.channels_last)  # as the module's weights
        with self._decode_tiled(z):
            return ((self._decode(self.module, z).float() + 1.0) / 2.0).clamp(0.0, 1.0)

    @property
    def compute_device(self) -> torch.device:
        return self._torch_device

    @property
    def compute_dtype(self) -> torch.dtype:
        return self._torch_dtype
