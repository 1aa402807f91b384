"""Mapping latent pixels to a palette, with or without dithering.

A latent ``(C, h, w)`` is a small C-channel image, so palette quantization works on its
``h * w`` pixel vectors.  Bühlmann (2022) got error diffusion through libimagequant's
Floyd–Steinberg dithering; :func:`floyd_steinberg` reproduces it in latent space.
Error diffusion is sequential, but pixel ``(i, j)`` only depends on pixels with a
smaller ``2 i + j`` (its left neighbour and the three above it), so every "wavefront"
``2 i + j = t`` is processed as one vectorised numpy step: about ``2 h + w`` steps
instead of ``h * w``.  :func:`ordered` is the fully parallel alternative (Bayer matrix).

Everything is deterministic: the same input gives the same indices, and ties between
equally near palette entries go to the lower index.
"""

from __future__ import annotations

import numpy as np

from ..errors import StageConfigError, StageInputError

DITHER_MODES = ("none", "fs", "ordered")

#: Floyd–Steinberg weights (right, down-left, down, down-right), in sixteenths.
_FS_WEIGHTS = (7.0 / 16.0, 3.0 / 16.0, 5.0 / 16.0, 1.0 / 16.0)


def nearest(points: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette entry (squared Euclidean) for each row of ``points``.

    >>> import numpy as np
    >>> palette = np.array([[0.0, 0.0], [10.0, 0.0]], dtype=np.float32)
    >>> nearest(np.array([[1.0, 1.0], [9.0, 3.0]], dtype=np.float32), palette).tolist()
    [0, 1]
    """
    diff = points[:, None, :] - palette[None, :, :]
    return np.argmin(np.einsum("nkc,nkc->nk", diff, diff), axis=1).astype(np.int32)


def _check(image: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image, dtype=np.float32)
    palette = np.asarray(palette, dtype=np.float32)
    if image.ndim != 3 or palette.ndim != 2 or palette.shape[1] != image.shape[0] or len(palette) < 1:
        raise StageInputError(f"dither: image {image.shape} and palette {palette.shape} do not fit")
    return image, palette


def no_dither(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Plain nearest-entry mapping of a ``(C, h, w)`` image; returns ``(h, w)`` int32 indices."""
    image, palette = _check(image, palette)
    c, h, w = image.shape
    return nearest(image.reshape(c, -1).T, palette).reshape(h, w)


def floyd_steinberg(image: np.ndarray, palette: np.ndarray, level: float = 1.0) -> np.ndarray:
    """Floyd–Steinberg error diffusion of a ``(C, h, w)`` image onto ``palette`` ``(K, C)``.

    ``level`` scales the diffused error (libimagequant's "dithering level"; 1.0 is full
    dithering, 0.0 is plain nearest mapping).  Raster order, processed by wavefronts.

    >>> import numpy as np
    >>> ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (1, 4, 1))  # (1, 4, 16)
    >>> idx = floyd_steinberg(ramp, np.array([[0.0], [1.0]], dtype=np.float32))
    >>> mean = idx.mean(axis=0)  # dithering keeps the local mean of the ramp
    >>> assert abs(mean[:8].mean() - ramp[0, 0, :8].mean()) < 0.15
    >>> assert np.array_equal(idx, floyd_steinberg(ramp, np.array([[0.0], [1.0]], dtype=np.float32)))
    """
    image, palette = _check(image, palette)
    c, h, w = image.shape
    pixels = np.ascontiguousarray(np.moveaxis(image, 0, -1))  # (h, w, C)
    err = np.zeros((h + 1, w + 2, c), dtype=np.float32)  # column offset 1: j-1 >= -1 fits
    out = np.empty((h, w), dtype=np.int32)
    lvl = np.float32(level)
    wr, wdl, wd, wdr = (np.float32(x) for x in _FS_WEIGHTS)
    for t in range(2 * (h - 1) + w):
        i = np.arange(max(0, (t - w + 2) // 2), min(h - 1, t // 2) + 1)
        j = t - 2 * i
        values = pixels[i, j] + err[i, j + 1]
        idx = nearest(values, palette)
        out[i, j] = idx
        e = (values - palette[idx]) * lvl
        err[i, j + 2] += wr * e
        err[i + 1, j] += wdl * e
        err[i + 1, j + 1] += wd * e
        err[i + 1, j + 2] += wdr * e
    return out


def bayer_matrix(order: int = 3) -> np.ndarray:
    """The ``2**order`` square Bayer threshold matrix, values in (0, 1), mean 0.5."""
    m = np.zeros((1, 1), dtype=np.float64)
    for _ in range(order):
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return ((m + 0.5) / m.size).astype(np.float32)


def ordered(image: np.ndarray, palette: np.ndarray, level: float = 1.0) -> np.ndarray:
    """Ordered (Bayer 8x8) dithering: fully vectorised, no error propagation.

    Each channel gets the threshold matrix at a different offset, so the dither noise is
    not concentrated along the diagonal of the C-dimensional space.  The amplitude is
    ``level`` times the palette's mean nearest-neighbour spacing.

    >>> import numpy as np
    >>> ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (1, 8, 1))
    >>> idx = ordered(ramp, np.array([[0.0], [1.0]], dtype=np.float32))
    >>> assert 0 < idx[:, 4:12].mean() < 1  # mid-ramp pixels mix both entries
    """
    image, palette = _check(image, palette)
    c, h, w = image.shape
    if len(palette) < 2:
        return no_dither(image, palette)
    d = palette[:, None, :] - palette[None, :, :]
    dist = np.sqrt(np.einsum("abc,abc->ab", d, d) + np.diag(np.full(len(palette), np.inf, dtype=np.float32)))
    spacing = np.float32(dist.min(axis=1).mean())
    bayer = bayer_matrix(3)
    n = bayer.shape[0]
    noise = np.empty((c, h, w), dtype=np.float32)
    for ch in range(c):
        shifted = np.roll(bayer, shift=(3 * ch, 5 * ch), axis=(0, 1))
        noise[ch] = np.tile(shifted, (-(-h // n), -(-w // n)))[:h, :w] - np.float32(0.5)
    return no_dither(image + np.float32(level) * spacing * noise, palette)


def dither(image: np.ndarray, palette: np.ndarray, mode: str = "fs", level: float = 1.0) -> np.ndarray:
    """Dispatch on ``mode`` (one of :data:`DITHER_MODES`)."""
    if mode == "fs":
        return floyd_steinberg(image, palette, level)
    if mode == "ordered":
        return ordered(image, palette, level)
    if mode == "none":
        return no_dither(image, palette)
    raise StageConfigError(f"dither must be one of {', '.join(DITHER_MODES)}, got {mode!r}")
