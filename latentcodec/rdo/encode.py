"""The search as the codec runs it: check the chain's hooks, search, return a latent on the grid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StageConfigError, StageInputError
from .efforts import RECIPE, SearchSettings
from .search import run_search

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..codec import Codec


def _refuse(settings: SearchSettings, what: str) -> StageConfigError:
    e = settings.effort
    return StageConfigError(f"{what}, so --effort {e} cannot search; use --effort 0")


def native_bf16(device: "torch.device") -> bool:
    """Whether ``device`` runs bf16 convolutions natively (an AVX512-BF16/AMX CPU, an Ampere+ GPU)."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def search_parts(codec: "Codec", settings: SearchSettings) -> tuple[Any, Any, "torch.device"]:
    """``(grid, rate model, device)`` of the codec's chain, or the one-line error naming the stage that cannot search."""
    transform, quantizer, coder = codec.transform, codec.quantizer, codec.entropy_coder
    if not getattr(transform, "differentiable", False):
        raise _refuse(settings, f"transform {transform.name!r} cannot give gradients")
    grid = quantizer.latent_grid()
    if grid is None:
        raise _refuse(settings, f"quantizer {quantizer.name!r} has no differentiable proxy")
    device = transform.compute_device
    rate = coder.rate_model(device)
    if rate is None:
        raise _refuse(settings, f"entropy coder {coder.name!r} has no differentiable rate estimate")
    return grid, rate, device


def check_search(codec: "Codec", settings: SearchSettings) -> None:
    """Raise the one-line :class:`~latentcodec.errors.StageConfigError` of :func:`search_parts`
    if ``codec`` cannot search at ``settings`` (nothing to check at effort 0)."""
    if settings.steps:
        search_parts(codec, settings)


def search_latent(codec: "Codec", image: "torch.Tensor", latent: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """The latent ``(C, h, w)`` whose stream the search chose for ``image`` ``(1, 3, H, W)``,
    starting from the plain analysis ``latent``; it lies on the quantizer's grid, so
    ``codec.quantizer`` gives exactly the chosen symbols.  Effort 0 returns ``latent`` itself."""
    import torch

    if settings.steps == 0:
        return latent
    grid, rate, device = search_parts(codec, settings)
    transform = codec.transform
    height, width = image.shape[-2:]
    bf16 = RECIPE.bf16 and transform.compute_dtype == torch.float32 and native_bf16(device)
    result = run_search(
        lambda z: transform.differentiable_synthesis(z)[..., :height, :width],  # the decoder crops its padding too
        grid,
        rate,
        image.to(device, torch.float32),
        torch.from_numpy(np.ascontiguousarray(latent, dtype=np.float32))[None].to(device),
        steps=settings.steps,
        distortion=settings.distortion,
        relative_lambda=settings.relative_lambda,
        bf16=bf16,
        progress=settings.progress,
    )
    symbols = result.symbols[0].numpy().astype(np.int32)
    chosen = codec.quantizer.dequantize(symbols)
    if not np.array_equal(codec.quantizer.quantize(chosen).symbols, symbols):  # pragma: no cover - a broken latent_grid
        raise StageInputError(f"quantizer {codec.quantizer.name!r}: its latent_grid does not reproduce the searched symbols")
    return chosen
