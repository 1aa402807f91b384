"""Colour and orientation: ICC profiles to sRGB (LittleCMS), CMYK and LAB, EXIF orientation."""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    pass

from .core import ImageWarning, _Layers

# --- ICC profiles ----------------------------------------------------------------------
_PROFILE_SPACE = {"rgb": "RGB", "gray": "GRAY", "cmyk": "CMYK"}
_PERCEPTUAL = 0  # ICC rendering intent (ImageCms.Intent.PERCEPTUAL)
_NOCACHE = 0x0040  # cmsFLAGS_NOCACHE: cached transforms are shared, keep them thread-safe


@lru_cache(maxsize=1)
def _srgb_profile():  # type: ignore[no-untyped-def]
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=16)
def _icc_plan(icc: bytes, family: str, in_mode: str) -> tuple[str, Any]:
    """``("identity", None)``, ``("convert", transform)`` or ``("broken", reason)``."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError) as exc:
        return "broken", f"it cannot be read ({exc})"
    space = (profile.profile.xcolor_space or "").strip()
    if family == "gray" and space == "RGB" and _icc_plan(icc, "rgb", "RGB")[0] == "identity":
        return "identity", None  # an sRGB profile on a grey image: grey sRGB is what it says
    if space != _PROFILE_SPACE[family]:
        return "broken", f"it describes {space or 'unknown'} colours, the image has {_PROFILE_SPACE[family]} colours"
    try:
        description = ImageCms.getProfileDescription(profile) or ""
    except ImageCms.PyCMSError:
        description = ""
    if family == "rgb" and "srgb" in description.lower():
        return "identity", None
    out_mode = "RGB" if family != "rgb" else in_mode
    try:
        transform = ImageCms.buildTransform(profile, _srgb_profile(), in_mode, out_mode, _PERCEPTUAL, _NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        return "broken", f"LittleCMS cannot convert it to sRGB ({exc})"
    if family == "cmyk":
        return "convert", transform
    # profiles equivalent to sRGB (another name, rounding) leave the pixels untouched
    if family == "rgb":
        levels = np.linspace(0, 255, 18).round().astype(np.uint8)
        grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(1, -1, 3)
        probe = Image.fromarray(np.ascontiguousarray(grid), "RGB").convert(in_mode)
        expected = grid
    else:
        ramp = np.arange(256, dtype=np.uint8).reshape(1, -1)
        probe = Image.fromarray(ramp, "L")
        expected = np.repeat(ramp[..., None], 3, axis=2)
    try:
        result = np.asarray(ImageCms.applyTransform(probe, transform))[..., :3]
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        return "broken", f"LittleCMS cannot convert it to sRGB ({exc})"
    if int(np.abs(result.astype(np.int16) - expected.astype(np.int16)).max()) <= 1:
        return "identity", None
    return "convert", transform


def _icc_warning(source: str, reason: str, fallback: str) -> None:
    warnings.warn(f"{source}: ignoring its embedded ICC profile: {reason}; {fallback}", ImageWarning, stacklevel=4)


def _apply_icc(layers: _Layers, icc: bytes, source: str) -> _Layers:
    """Grey or RGB layers with an embedded profile -> sRGB layers (8-bit colour)."""
    family = "gray" if layers.gray else "rgb"
    in_mode = "L" if layers.gray else "RGB"
    plan, detail = _icc_plan(icc, family, in_mode)
    if plan == "identity":
        return layers
    if plan == "broken":
        _icc_warning(source, detail, "its pixels are taken as sRGB")
        return layers
    from PIL import ImageCms

    color = layers.color.astype(np.float32) / np.float32(layers.scale)
    if layers.premultiplied and layers.alpha is not None:  # profiles apply to straight colour
        a = layers.alpha.astype(np.float32) / np.float32(layers.alpha_scale)
        a = a if layers.gray else a[..., None]
        color = np.divide(color, a, out=np.zeros_like(color), where=a > 0).clip(0.0, 1.0)
    color8 = np.rint(color * 255.0).astype(np.uint8)
    converted = ImageCms.applyTransform(Image.fromarray(color8, in_mode), detail)
    rgb = np.asarray(converted.convert("RGB"))
    return _Layers(rgb, 255.0, layers.alpha, layers.alpha_scale, premultiplied=False)


def _cmyk_to_rgb(im: Image.Image, icc: Optional[bytes], source: str) -> Image.Image:
    if icc:
        plan, detail = _icc_plan(icc, "cmyk", "CMYK")
        if plan == "convert":
            from PIL import ImageCms

            return ImageCms.applyTransform(im, detail)
        _icc_warning(source, detail, "using Pillow's profile-free CMYK conversion")
    return im.convert("RGB")


@lru_cache(maxsize=1)
def _lab_transform():  # type: ignore[no-untyped-def]
    from PIL import ImageCms

    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    return ImageCms.buildTransform(lab, _srgb_profile(), "LAB", "RGB", _PERCEPTUAL, _NOCACHE)


# --- EXIF orientation --------------------------------------------------------------------
def _orientation(im: Image.Image, source: str) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception as exc:  # Pillow raises many kinds on malformed EXIF
        warnings.warn(f"{source}: cannot read its EXIF block ({exc}); orientation not applied", ImageWarning, stacklevel=4)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """The transpose ``ImageOps.exif_transpose`` applies for an EXIF orientation, on ``(H, W, ...)``."""
    if orientation == 2:  # FLIP_LEFT_RIGHT
        return array[:, ::-1]
    if orientation == 3:  # ROTATE_180
        return array[::-1, ::-1]
    if orientation == 4:  # FLIP_TOP_BOTTOM
        return array[::-1]
    if orientation == 5:  # TRANSPOSE
        return array.swapaxes(0, 1)
    if orientation == 6:  # ROTATE_270 (90 degrees clockwise)
        return np.rot90(array, -1)
    if orientation == 7:  # TRANSVERSE
        return np.rot90(array, 2).swapaxes(0, 1)
    if orientation == 8:  # ROTATE_90 (90 degrees counter-clockwise)
        return np.rot90(array, 1)
    return array
