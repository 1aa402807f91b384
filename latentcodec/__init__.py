"""latentcodec: image compression in the latent space of Stable Diffusion.

An image goes through four interchangeable stages (transform, quantizer, entropy coder,
refiner) that are discovered through entry points; see :class:`Codec`.

Importing the package is cheap: the names below are loaded on first use, so
``latentcodec --help``, ``--version``, ``info``, ``stages`` and ``presets`` never import
torch.  ``import latentcodec.pillow`` teaches Pillow to open and save ``.lc`` files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "Codec": "codec",
    "CompressResult": "codec",
    "compress": "api",
    "decompress": "api",
    "describe": "info",
    "LatentCodecError": "errors",
    "PRESETS": "presets",
    "EntropyCoder": "stages",
    "Quantized": "stages",
    "Quantizer": "stages",
    "RefineContext": "stages",
    "Refiner": "stages",
    "Stage": "stages",
    "Transform": "stages",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from .api import compress, decompress
    from .codec import Codec, CompressResult
    from .errors import LatentCodecError
    from .info import describe
    from .presets import PRESETS
    from .stages import EntropyCoder, Quantized, Quantizer, RefineContext, Refiner, Stage, Transform


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'latentcodec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
