"""Built-in quantizers (float latent -> int32 symbols + side info).

Stages, each registered in the ``latentcodec.quantizers`` entry-point group:

* ``uniform`` (:mod:`.uniform`): ``round(latent / step)``;
* ``uint8`` (:mod:`.uint8`): Bühlmann's (2022) 8-bit grid (also the grid of ``palette``);
* ``palette`` (:mod:`.palette`): per-image or global palettes over the uint8 grid, with
  dithering and rank relabelling (Bühlmann's full recipe and our improvement on it).

Helpers: :mod:`.dither` (error diffusion and ordered dithering), :mod:`.codebooks`
(shipped global palettes), :mod:`._wire` (compact float parameters).
"""
