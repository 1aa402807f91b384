"""Rate-distortion-optimised encoding: search the latent through the decoder.

The plain encoder is ``symbols = quantize(analysis(image))``.  The decoder never sees
how the symbols were chosen, so the encoder may instead search for symbols that decode
to a better image in fewer bits: Adam on the latent, through the transform's real
decoder, minimising ``lmbda * D / D0 + bpp`` (``D0``: the plain encode's distortion)
with straight-through rounding and the entropy coder's differentiable rate estimate.
The stream format and every decoder are unchanged; effort 0 is the plain encoder, byte
for byte.

Modules, one concept each: :mod:`.efforts` (effort levels, the shared recipe,
:class:`SearchSettings`), :mod:`.grid` (a quantizer's grid in step units),
:mod:`.rate` (what a rate estimate is) with :mod:`.rate_hyperprior` (the hyperprior's
float twin), :mod:`.rate_tables` (fixed integer tables) and :mod:`.rate_histogram`
(a proxy for image-adaptive coders), :mod:`.distortion`, :mod:`.search` (the loop) and
:mod:`.encode` (what :class:`~latentcodec.Codec` calls).  The stages opt in through
hooks on their contracts (:mod:`latentcodec.stages`): ``Transform.differentiable`` /
``differentiable_synthesis``, ``Quantizer.latent_grid``, ``EntropyCoder.rate_model``.
"""

from __future__ import annotations

from .efforts import DEFAULT_LAMBDA, DISTORTIONS, EFFORTS, MAX_EFFORT, RECIPE, SearchSettings, parse_effort
from .grid import LatentGrid

__all__ = ["DEFAULT_LAMBDA", "DISTORTIONS", "EFFORTS", "MAX_EFFORT", "RECIPE", "LatentGrid", "SearchSettings", "parse_effort"]
