"""The pixel-limit check, shared constants, and the decoded form every image source goes through."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import numpy as np
from PIL import Image

from ..errors import ImageReadError, ImageTooLargeError

if TYPE_CHECKING:
    import torch



#: Default pixel limit for inputs (4096 x 4096); raise it with ``max_pixels=``.
DEFAULT_MAX_PIXELS = 4096 * 4096

#: Anything :func:`to_tensor` accepts.
ImageLike = Union[str, os.PathLike, Image.Image, "torch.Tensor", np.ndarray]

#: File suffixes of images (lower case), all of which the installed Pillow (13.x) opens.
#: ``.jxl`` is left out: Pillow has no JPEG XL decoder without a third-party plugin.
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm", ".gif", ".avif",
)  # fmt: skip

#: Float inputs may exceed [0, 1] by this much (rounding noise); it is clamped away.
FLOAT_TOLERANCE = 1e-5


class ImageWarning(UserWarning):
    """An input image was read with a documented fallback (a broken ICC profile, a
    broken EXIF block, 16-bit colour that Pillow reduces to 8 bits)."""


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageReadError(f"image has an empty side ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image of {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
            "(pass max_pixels / --max-pixels to raise it)"
        )


# --- the decoded form every source goes through ---------------------------------------
@dataclass
class _Layers:
    """Colour samples (``(H, W)`` grey or ``(H, W, 3)`` RGB; uint8, uint16 or float32)
    whose white is ``scale``, and an optional ``(H, W)`` alpha whose opaque is ``alpha_scale``."""

    color: np.ndarray
    scale: float
    alpha: Optional[np.ndarray] = None
    alpha_scale: float = 255.0
    premultiplied: bool = False

    @property
    def gray(self) -> bool:
        return self.color.ndim == 2


@dataclass
class _Pixels:
    """Opaque sRGB samples, ``(H, W)`` or ``(H, W, 3)``, white = ``scale``."""

    array: np.ndarray
    scale: float

    def rgb(self) -> np.ndarray:
        a = self.array
        return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a

    def as_float(self) -> np.ndarray:
        """``(H, W, 3)`` float32 in [0, 1]."""
        a = self.rgb()
        if a.dtype == np.float32 and self.scale == 1.0:
            return a
        out = a.astype(np.float32)
        if self.scale != 1.0:
            out /= np.float32(self.scale)
        return out

    def as_uint8(self) -> np.ndarray:
        """``(H, W, 3)`` uint8, rounded."""
        a = self.rgb()
        if a.dtype == np.uint8:
            return a
        if a.dtype == np.uint16 and self.scale == 65535:
            return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return np.rint(a.astype(np.float32) * np.float32(255.0 / self.scale)).clip(0, 255).astype(np.uint8)


def _composite(layers: _Layers) -> _Pixels:
    """Alpha over white; opaque images keep their integer samples."""
    color, alpha = layers.color, layers.alpha
    if alpha is None or bool((alpha == layers.alpha_scale).all()):
        return _Pixels(color, layers.scale)
    c = color.astype(np.float32) / np.float32(layers.scale)
    a = alpha.astype(np.float32) / np.float32(layers.alpha_scale)
    if not layers.gray:
        a = a[..., None]
    if layers.premultiplied:
        if bool((c > a + np.float32(1.0 / layers.scale + 1e-6)).any()):
            raise ImageReadError(
                "premultiplied-alpha image (mode RGBa/La) has colour values above their alpha: "
                "it is not premultiplied data (use mode RGBA/LA for straight alpha)"
            )
        out = c + (np.float32(1.0) - a)
    else:
        out = c * a + (np.float32(1.0) - a)
    np.clip(out, 0.0, 1.0, out=out)
    return _Pixels(out, 1.0)


# --- value rules ---------------------------------------------------------------------
def _wide_ints(values: np.ndarray, what: str, *, scale_defined: bool = False) -> np.ndarray:
    """Mode ``I`` / int32, int64, ... samples -> uint16 by the 16-bit rule (or refuse)."""
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi > 65535:
        raise ImageReadError(
            f"{what} has values {lo}..{hi}: integer images without a bit depth are read as 16-bit "
            "levels 0..65535, so this range would have to be clipped; rescale the values into "
            "0..65535 (or 0..255) and pass them as uint16 (or uint8)"
        )
    if 0 < hi <= 255 and not scale_defined:
        raise ImageReadError(
            f"{what} has values {lo}..{hi}: read as 16-bit levels that is almost black, but it "
            "looks like 8-bit data; pass uint8 (mode L) for 8-bit data or uint16 (mode I;16) for 16-bit data"
        )
    return values.astype(np.uint16)


def _unit_floats(values: np.ndarray, what: str) -> np.ndarray:
    """Float samples that must lie in [0, 1] -> float32 (or refuse)."""
    values = np.asarray(values)
    finite = np.isfinite(values)
    if not bool(finite.all()):
        nan = int(np.isnan(values).sum())
        inf = int(values.size - finite.sum()) - nan
        raise ImageReadError(f"{what} contains NaN ({nan} values) or infinity ({inf} values); float images must be finite values in [0, 1]")
    lo, hi = float(values.min()), float(values.max())
    if lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
        hint = " (8-bit values? divide by 255)" if hi > 1.5 and hi <= 255.0 and lo >= 0 else ""
        raise ImageReadError(
            f"{what} has values in [{lo:.6g}, {hi:.6g}]; float images must lie in [0, 1]{hint}: "
            "rescale them first, nothing is clipped"
        )
    out = values.astype(np.float32)
    if lo < 0.0 or hi > 1.0:
        np.clip(out, 0.0, 1.0, out=out)
    return out
