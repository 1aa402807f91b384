"""``palette``: vector quantization of the latent's pixel vectors (Bühlmann, 2022).

Bühlmann's recipe: map the latent to his uint8 grid (see :mod:`.uint8`), treat the C=4
channels as an RGBA image, reduce it to a 256-colour palette with libimagequant and
full Floyd–Steinberg dithering, and zlib-compress palette and indices.  Here:

* the palette is fitted per image by k-means on the uint8 pixel vectors (libimagequant
  is not in Pillow's wheels; k-means is the textbook stand-in), or read from a global
  codebook shipped in ``latentcodec/data`` (no palette bytes per image);
* the pixels are mapped to it with :mod:`.dither` (``fs``, ``ordered`` or ``none``);
* entries no pixel uses are dropped (decoding is unchanged, the palette gets shorter);
* the palette travels in the side info, either zlib-compressed in popularity order (the
  seed; libimagequant also sorts by popularity) or ``compact``: sorted, delta-coded
  and packed with exact integer arithmetic (see :mod:`latentcodec.entropy.palette_ctx`);
* the symbols are ``(1, h, w)``: either palette indices, or *ranks*: the position of
  the pixel's entry in the palette sorted by distance to a prediction from its decoded
  left, top and top-left neighbours.  Ranks are a bijective relabelling (same decoded
  latent), but concentrated near 0, so they code far better.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any, ClassVar

import numpy as np

from ..errors import CorruptStreamError, StageConfigError, StageInputError
from ..stages import Quantized, Quantizer
from ._wire import as_float32
from .dither import DITHER_MODES, dither
from .uint8 import DEFAULT_HALF_RANGE, LEVELS

PALETTE_CODINGS = ("zlib", "compact")
#: How the encoder measures a colour's distance: ``euclidean`` on the uint8 grid (the
#: seed), or ``sd-decoder``, the SD decoder's sensitivity to latent errors (below), which
#: is ~6x larger along some channel combinations than others.
METRICS = ("euclidean", "sd-decoder")
#: ``M`` with pixel MSE ~ ``e^T M e`` for a small latent error ``e`` (per pixel, spatially
#: white), normalised to unit geometric-mean diagonal.  Measured through the TAESD decoder
#: (a distilled SD 1.x/2.x decoder) on crops of ``../shared/datasets/train-photos``
#: latents by :func:`latentcodec.training.decoder_metric.decoder_metric`.  It only steers
#: the encoder (palette fit and dithering): the palette still travels in grid units.
SD_DECODER_METRIC = np.array(
    [
        [1.006, -0.003, -0.004, -0.632],
        [-0.003, 0.755, 0.024, -0.244],
        [-0.004, 0.024, 0.982, -0.453],
        [-0.632, -0.244, -0.453, 1.340],
    ]
)
#: ``T`` with ``|T e|^2 = e^T M e``: fitting and dithering run on ``T x``.
_SD_DECODER_T = np.linalg.cholesky(SD_DECODER_METRIC).T
SYMBOL_MODES = ("index", "rank")
MAX_COLORS = 256
#: Prediction for the first pixel, which has no decoded neighbour: mid-grey of the uint8 grid.
MID = 128


def kmeans_palette(points: np.ndarray, k: int, iterations: int = 16, seed: int = 0, metric: np.ndarray | None = None) -> np.ndarray:
    """Up to ``k`` uint8 colours for ``points`` ``(N, C)`` (k-means++ then Lloyd).

    Deterministic for a given input (seeded).  Fewer distinct input colours than ``k``
    are returned as they are.  With ``metric = T`` the clustering minimises ``|T (p - c)|^2``
    (it runs on ``T p`` and maps the centres back).

    >>> import numpy as np
    >>> pts = np.array([[0, 0], [1, 1], [200, 200], [201, 201]], dtype=np.float32)
    >>> kmeans_palette(pts, 2).tolist()
    [[0, 0], [200, 200]]
    """
    pts = np.asarray(points, dtype=np.float64)
    unique = np.unique(np.rint(pts), axis=0)
    if len(unique) <= k:
        return np.clip(unique, 0, 255).astype(np.uint8)
    if metric is not None:
        pts = pts @ metric.T
    rng = np.random.default_rng(seed)
    n = len(pts)
    centers = np.empty((k, pts.shape[1]))
    centers[0] = pts[rng.integers(n)]
    d2 = ((pts - centers[0]) ** 2).sum(1)
    for c in range(1, k):
        centers[c] = pts[rng.choice(n, p=d2 / d2.sum())]
        d2 = np.minimum(d2, ((pts - centers[c]) ** 2).sum(1))
    sq = (pts**2).sum(1)
    for _ in range(iterations):
        dist = sq[:, None] - 2.0 * pts @ centers.T + (centers**2).sum(1)[None]
        labels = dist.argmin(1)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, pts[:, c], minlength=k) for c in range(pts.shape[1])], 1)
        used = counts > 0
        centers[used] = sums[used] / counts[used, None]
        if not used.all():  # re-seed empty clusters at the worst-served points
            far = np.argsort(-dist[np.arange(n), labels], kind="stable")[: int((~used).sum())]
            centers[~used] = pts[far]
    if metric is not None:
        centers = np.linalg.solve(metric, centers.T).T
    return np.unique(np.clip(np.rint(centers), 0, 255), axis=0).astype(np.uint8)


# --- rank relabelling ----------------------------------------------------------------
def _neighbours(colors: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left, top and top-left colours (int64) at positions ``(i, j)`` with fixed edge rules."""
    c = colors.shape[-1]
    mid = np.full((len(i), c), MID, dtype=np.int64)
    ii, jj = np.maximum(i - 1, 0), np.maximum(j - 1, 0)
    top = colors[ii, j].astype(np.int64)
    left = np.where((j > 0)[:, None], colors[i, jj], np.where((i > 0)[:, None], top, mid)).astype(np.int64)
    top = np.where((i > 0)[:, None], top, left)
    top_left = np.where(((i > 0) & (j > 0))[:, None], colors[ii, jj].astype(np.int64), top)
    return left, top, top_left


def predict(left: np.ndarray, top: np.ndarray, top_left: np.ndarray) -> np.ndarray:
    """Integer prediction of a pixel's colour: ``(L + T + 1) // 2``.

    Measured on Kodak TAESD latents (256 colours, rank entropy): the mean of left and top
    beat the gradient ``L + T - TL``, MED and ``(3L + 3T - 2TL) / 4``; the dithered
    latent is too noisy for gradient predictors.  ``top_left`` is kept for the edge rules.
    """
    return (left + top + 1) // 2


def _distances(pred: np.ndarray, palette: np.ndarray) -> np.ndarray:
    diff = pred[:, None, :] - palette.astype(np.int64)[None, :, :]
    return np.einsum("nkc,nkc->nk", diff, diff)


def indices_to_ranks(indices: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Rank of each pixel's entry among palette entries sorted by distance to its prediction.

    Ties go to the lower palette index.  Integer arithmetic only.
    """
    h, w = indices.shape
    colors = palette[indices]
    i, j = (a.ravel() for a in np.indices((h, w)))
    dist = _distances(predict(*_neighbours(colors, i, j)), palette)
    own = indices.ravel()
    d_own = dist[np.arange(len(own)), own][:, None]
    k = np.arange(len(palette))[None, :]
    ranks = ((dist < d_own) | ((dist == d_own) & (k < own[:, None]))).sum(1)
    return ranks.reshape(h, w).astype(np.int32)


def ranks_to_indices(ranks: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Inverse of :func:`indices_to_ranks`, decoded by anti-diagonals (``i + j = t``)."""
    h, w = ranks.shape
    if ranks.size and (ranks.min() < 0 or ranks.max() >= len(palette)):
        raise CorruptStreamError("palette: rank outside the palette")
    indices = np.zeros((h, w), dtype=np.int32)
    colors = np.zeros((h, w, palette.shape[1]), dtype=np.uint8)
    for t in range(h + w - 1):
        i = np.arange(max(0, t - w + 1), min(h - 1, t) + 1)
        j = t - i
        dist = _distances(predict(*_neighbours(colors, i, j)), palette)
        order = np.argsort(dist, axis=1, kind="stable")
        chosen = order[np.arange(len(i)), ranks[i, j]]
        indices[i, j] = chosen
        colors[i, j] = palette[chosen]
    return indices


# --- palette side info -----------------------------------------------------------------
def encode_palette(palette: np.ndarray, coding: str) -> bytes:
    """``count - 1 | channels - 1`` bytes, then the entries (zlib of raw bytes, or the compact code)."""
    head = bytes([len(palette) - 1, palette.shape[1] - 1])
    if coding == "zlib":
        return head + zlib.compress(np.ascontiguousarray(palette, dtype=np.uint8).tobytes(), 9)
    from ..entropy.palette_ctx import encode_sorted_palette

    return head + encode_sorted_palette(palette)


def decode_palette(data: bytes, coding: str) -> tuple[np.ndarray, int]:
    """Inverse of :func:`encode_palette`; returns the palette and the bytes consumed."""
    if len(data) < 2:
        raise CorruptStreamError("palette: side info is too short")
    count, channels = data[0] + 1, data[1] + 1
    if coding == "zlib":
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(data[2:], count * channels)
        except zlib.error as exc:
            raise CorruptStreamError(f"palette: cannot inflate the palette ({exc})") from exc
        if len(raw) != count * channels or not inflater.eof:
            raise CorruptStreamError("palette: palette data is truncated")
        used = len(data) - 2 - len(inflater.unused_data)
        return np.frombuffer(raw, dtype=np.uint8).reshape(count, channels).copy(), 2 + used
    from ..entropy.palette_ctx import decode_sorted_palette

    palette, used = decode_sorted_palette(data[2:], count, channels)
    return palette, 2 + used


def compact_order(palette: np.ndarray) -> np.ndarray:
    """The canonical order of the compact palette code: lexicographic, channel 0 first."""
    return np.lexsort(palette.T[::-1])


class PaletteQuantizer(Quantizer):
    """Per-image (or global) palette of up to ``colors`` entries over the uint8 latent grid.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(4, 16, 16)).astype(np.float32)
    >>> q = PaletteQuantizer(colors=32, symbols="rank", palette_coding="compact")
    >>> out = q.quantize(latent)
    >>> out.symbols.shape, int(out.symbols.max()) < 32
    ((1, 16, 16), True)
    >>> restored = q.dequantize(out.symbols, out.side_info)
    >>> seed = PaletteQuantizer(colors=32)  # the seed's coding: same latent, other labels
    >>> s = seed.quantize(latent)
    >>> assert np.array_equal(seed.dequantize(s.symbols, s.side_info), restored)
    """

    name: ClassVar[str] = "palette"
    version: ClassVar[int] = 1
    #: What rate control searches (see :mod:`latentcodec.ratecontrol`).
    rate_parameter: ClassVar[str] = "colors"

    def __init__(
        self,
        colors: int = MAX_COLORS,
        dither: str = "fs",
        dither_level: float = 1.0,
        symbols: str = "index",
        palette_coding: str = "zlib",
        codebook: str | None = None,
        half_range: float = DEFAULT_HALF_RANGE,
        iterations: int = 16,
        metric: str = "euclidean",
    ) -> None:
        if isinstance(colors, bool) or not isinstance(colors, (int, np.integer)) or not 2 <= colors <= MAX_COLORS:
            raise StageConfigError(f"palette: colors must be an int in 2..{MAX_COLORS}, got {colors!r}")
        if dither not in DITHER_MODES:
            raise StageConfigError(f"palette: dither must be one of {', '.join(DITHER_MODES)}, got {dither!r}")
        try:
            dither_level = float(dither_level)
            half_range = float(half_range)
        except (TypeError, ValueError) as exc:
            raise StageConfigError(f"palette: dither_level and half_range must be numbers ({exc})") from exc
        if not 0.0 <= dither_level <= 1.0:
            raise StageConfigError(f"palette: dither_level must be in [0, 1], got {dither_level}")
        if not math.isfinite(half_range) or not 1e-3 <= half_range <= 1e4:
            raise StageConfigError(f"palette: half_range must be in [1e-3, 1e4], got {half_range}")
        if symbols not in SYMBOL_MODES:
            raise StageConfigError(f"palette: symbols must be one of {', '.join(SYMBOL_MODES)}, got {symbols!r}")
        if palette_coding not in PALETTE_CODINGS:
            raise StageConfigError(f"palette: palette_coding must be one of {', '.join(PALETTE_CODINGS)}, got {palette_coding!r}")
        if metric not in METRICS:
            raise StageConfigError(f"palette: metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if not isinstance(iterations, int) or not 0 <= iterations <= 1000:
            raise StageConfigError(f"palette: iterations must be an int in 0..1000, got {iterations!r}")
        if codebook is not None:
            from .codebooks import codebook_id, load_codebook

            codebook_id(codebook)  # validates the name
            load_codebook(codebook, int(colors))  # validates the size
        self.colors = int(colors)
        self.dither = dither
        self.dither_level = dither_level
        self.symbols = symbols
        self.palette_coding = palette_coding
        self.codebook = codebook
        self.half_range = as_float32(half_range)
        self.iterations = iterations
        self.metric = metric

    # --- the uint8 grid (exactly the ``uint8`` quantizer's) ---------------------------
    def to_grid(self, latent: np.ndarray) -> np.ndarray:
        unit = np.clip(latent / np.float32(2.0 * self.half_range) + np.float32(0.5), 0.0, 1.0)
        return np.floor(unit * np.float32(LEVELS) + np.float32(0.5))

    def from_grid(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float32)
        return (v / np.float32(LEVELS) - np.float32(0.5)) * np.float32(2.0 * self.half_range)

    def symbol_shape(self, latent_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Palette indices are one per latent pixel: ``(1, h, w)``."""
        return (1, *latent_shape[1:])

    # --- quantize ---------------------------------------------------------------------
    def metric_transform(self, channels: int) -> np.ndarray | None:
        """``T`` with ``|T e|^2 = e^T M e`` (None for the plain Euclidean metric)."""
        if self.metric == "euclidean":
            return None
        if channels != SD_DECODER_METRIC.shape[0]:
            raise StageInputError(f"palette: metric {self.metric!r} is for {SD_DECODER_METRIC.shape[0]}-channel SD latents, got {channels} channels")
        return _SD_DECODER_T

    def fit_palette(self, grid: np.ndarray) -> np.ndarray:
        if self.codebook is not None:
            from .codebooks import load_codebook

            return load_codebook(self.codebook, self.colors)
        c = grid.shape[0]
        return kmeans_palette(grid.reshape(c, -1).T, self.colors, self.iterations, metric=self.metric_transform(c))

    def quantize(self, latent: np.ndarray) -> Quantized:
        latent = np.asarray(latent, dtype=np.float32)
        if latent.ndim != 3 or not np.isfinite(latent).all():
            raise StageInputError(f"palette: expected a finite (C, h, w) latent, got shape {latent.shape}")
        if latent.shape[0] > 16:
            raise StageInputError(f"palette: {latent.shape[0]} channels is more than 16")
        grid = self.to_grid(latent)
        palette = self.fit_palette(grid)
        if palette.shape[1] != latent.shape[0]:
            raise StageInputError(f"palette: codebook has {palette.shape[1]} channels, the latent {latent.shape[0]}")
        t = self.metric_transform(grid.shape[0])
        if t is None:
            indices = dither(grid, palette.astype(np.float32), self.dither, self.dither_level)
        else:  # nearest colours in the metric; diffusion is linear, so T's coordinates carry it unchanged
            tf = t.astype(np.float32)
            indices = dither(np.einsum("dc,chw->dhw", tf, grid.astype(np.float32)), palette.astype(np.float32) @ tf.T, self.dither, self.dither_level)
        return self.encode_indices(indices, palette)

    def encode_indices(self, indices: np.ndarray, palette: np.ndarray) -> Quantized:
        """Relabel (drop unused entries, reorder) and build symbols and side info."""
        if self.codebook is None:
            used = np.unique(indices)
            palette, indices = palette[used], np.searchsorted(used, indices).astype(np.int32)
            if self.palette_coding == "zlib":  # the seed: most popular first (as libimagequant)
                counts = np.bincount(indices.ravel(), minlength=len(palette))
                order = np.lexsort((np.arange(len(palette)), -counts))
            else:
                order = compact_order(palette)
            palette = palette[order]
            indices = np.argsort(order)[indices].astype(np.int32)
            side = encode_palette(palette, self.palette_coding)
        else:
            side = b""
        symbols = indices_to_ranks(indices, palette) if self.symbols == "rank" else indices
        return Quantized(symbols[None].astype(np.int32), side)

    # --- dequantize -------------------------------------------------------------------
    def palette_from_side_info(self, side_info: bytes) -> np.ndarray:
        if self.codebook is not None:
            from .codebooks import load_codebook

            if side_info:
                raise CorruptStreamError("palette: unexpected side info with a global codebook")
            return load_codebook(self.codebook, self.colors)
        palette, used = decode_palette(side_info, self.palette_coding)
        if used != len(side_info):
            raise CorruptStreamError("palette: side info has bytes left over")
        return palette

    def dequantize(self, symbols: np.ndarray, side_info: bytes = b"") -> np.ndarray:
        s = np.asarray(symbols)
        if s.ndim != 3 or s.shape[0] != 1:
            raise CorruptStreamError(f"palette: expected (1, h, w) symbols, got {s.shape}")
        palette = self.palette_from_side_info(side_info)
        if self.symbols == "rank":
            indices = ranks_to_indices(s[0], palette)
        else:
            indices = s[0]
            if indices.size and (indices.min() < 0 or indices.max() >= len(palette)):
                raise CorruptStreamError("palette: index outside the palette")
        return np.ascontiguousarray(np.moveaxis(self.from_grid(palette[indices]), -1, 0))

    def residual_std(self, side_info: bytes = b"") -> float | None:
        return None

    # --- wire ---------------------------------------------------------------------------
    def wire_params(self) -> bytes:
        """``colors - 1 | flags [| codebook id] [| float32 half_range]``."""
        flags = PALETTE_CODINGS.index(self.palette_coding) | (SYMBOL_MODES.index(self.symbols) << 1)
        out = bytes([self.colors - 1])
        if self.codebook is not None:
            from .codebooks import codebook_id

            flags |= 4
        if as_float32(self.half_range) != as_float32(DEFAULT_HALF_RANGE):
            flags |= 8
        out += bytes([flags])
        if self.codebook is not None:
            out += bytes([codebook_id(self.codebook)])
        if flags & 8:
            out += struct.pack("<f", self.half_range)
        return out

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        if len(params) < 2 or params[1] & ~15:
            raise CorruptStreamError("palette: bad stream parameters")
        colors, flags = params[0] + 1, params[1]
        if colors < 2:
            raise CorruptStreamError("palette: fewer than 2 colours in stream parameters")
        rest = params[2:]
        config: dict[str, Any] = {
            "colors": colors,
            "palette_coding": PALETTE_CODINGS[flags & 1],
            "symbols": SYMBOL_MODES[(flags >> 1) & 1],
        }
        if flags & 4:
            from .codebooks import codebook_name

            if not rest:
                raise CorruptStreamError("palette: codebook id missing")
            config["codebook"] = codebook_name(rest[0])
            rest = rest[1:]
        if flags & 8:
            if len(rest) != 4:
                raise CorruptStreamError("palette: bad half range in stream parameters")
            (value,) = struct.unpack("<f", rest)
            if not math.isfinite(value) or not 1e-3 <= value <= 1e4:
                raise CorruptStreamError("palette: invalid half range in stream")
            config["half_range"] = value
            rest = b""
        if rest:
            raise CorruptStreamError("palette: stream parameters have bytes left over")
        return config
