"""``palette``: the quantizer that ties the palette modules together."""

from __future__ import annotations

import math
import struct
from typing import Any, ClassVar

import numpy as np

from ...errors import CorruptStreamError, StageConfigError, StageInputError
from ...rate import RateParameter
from ...stages import Quantized, Quantizer
from .._wire import as_float32
from ..dither import DITHER_MODES, dither
from ..uint8 import DEFAULT_HALF_RANGE, from_grid, to_grid
from .kmeans import kmeans_palette
from .metric import SD_DECODER_T, METRICS, SD_DECODER_METRIC
from .ranks import indices_to_ranks, ranks_to_indices
from .side_info import PALETTE_CODINGS, compact_order, decode_palette, encode_palette

SYMBOL_MODES = ("index", "rank")
MAX_COLORS = 256


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
    rate_parameter: ClassVar[RateParameter] = RateParameter(
        "colors", coarsest=2, finest=MAX_COLORS, integer=True, sweep=(16, 32, 64, 128, 256), quality_range=(2, MAX_COLORS)
    )

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
            from ..codebooks import codebook_id, load_codebook

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

    # --- the uint8 grid (the ``uint8`` quantizer's) ------------------------------------
    def to_grid(self, latent: np.ndarray) -> np.ndarray:
        return to_grid(latent, self.half_range)

    def from_grid(self, values: np.ndarray) -> np.ndarray:
        return from_grid(values, self.half_range)

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
        return SD_DECODER_T

    def fit_palette(self, grid: np.ndarray) -> np.ndarray:
        if self.codebook is not None:
            from ..codebooks import load_codebook

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
            from ..codebooks import load_codebook

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
            from ..codebooks import codebook_id

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
            from ..codebooks import codebook_name

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
