"""latentcodec: image compression in the latent space of Stable Diffusion.

An image goes through four interchangeable stages (transform, quantizer, entropy coder,
refiner) that are discovered through entry points; see :class:`Codec`.
"""

from __future__ import annotations

from .codec import Codec, compress, decompress
from .info import describe
from .errors import LatentCodecError
from .presets import PRESETS
from .stages import EntropyCoder, Quantized, Quantizer, RefineContext, Refiner, Stage, Transform

__version__ = "0.1.0"

__all__ = [
    "Codec",
    "EntropyCoder",
    "LatentCodecError",
    "PRESETS",
    "Quantized",
    "Quantizer",
    "RefineContext",
    "Refiner",
    "Stage",
    "Transform",
    "__version__",
    "compress",
    "decompress",
    "describe",
]
