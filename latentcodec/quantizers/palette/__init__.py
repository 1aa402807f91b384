"""``palette``: vector quantization of the latent's pixel vectors (Bühlmann, 2022).

Bühlmann's recipe: map the latent to his uint8 grid (see :mod:`latentcodec.quantizers.uint8`), treat the C=4
channels as an RGBA image, reduce it to a 256-colour palette with libimagequant and
full Floyd–Steinberg dithering, and zlib-compress palette and indices.  Here:

* the palette is fitted per image by k-means on the uint8 pixel vectors (libimagequant
  is not in Pillow's wheels; k-means is the textbook stand-in), or read from a global
  codebook shipped in ``latentcodec/data`` (no palette bytes per image);
* the pixels are mapped to it with :mod:`latentcodec.quantizers.dither` (``fs``, ``ordered`` or ``none``);
* entries no pixel uses are dropped (decoding is unchanged, the palette gets shorter);
* the palette travels in the side info, either zlib-compressed in popularity order (the
  seed; libimagequant also sorts by popularity) or ``compact``: sorted, delta-coded
  and packed with exact integer arithmetic;
* the symbols are ``(1, h, w)``: either palette indices, or *ranks*: the position of
  the pixel's entry in the palette sorted by distance to a prediction from its decoded
  left, top and top-left neighbours.  Ranks are a bijective relabelling (same decoded
  latent), but concentrated near 0, so they code far better.

Modules: :mod:`.quantizer` (the stage), :mod:`.kmeans` (palette fitting),
:mod:`.metric` (the SD decoder's error metric), :mod:`.ranks` (rank relabelling),
:mod:`.side_info` (palette coding).
"""

from __future__ import annotations

from .kmeans import kmeans_palette
from .metric import METRICS, SD_DECODER_METRIC
from .quantizer import MAX_COLORS, SYMBOL_MODES, PaletteQuantizer
from .ranks import indices_to_ranks, predict, ranks_to_indices
from .side_info import PALETTE_CODINGS, compact_order, decode_palette, decode_sorted_palette, encode_palette, encode_sorted_palette

__all__ = [
    "MAX_COLORS",
    "METRICS",
    "PALETTE_CODINGS",
    "SD_DECODER_METRIC",
    "SYMBOL_MODES",
    "PaletteQuantizer",
    "compact_order",
    "decode_palette",
    "decode_sorted_palette",
    "encode_palette",
    "encode_sorted_palette",
    "indices_to_ranks",
    "kmeans_palette",
    "predict",
    "ranks_to_indices",
]
