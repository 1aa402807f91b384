"""Image input (every source becomes one float tensor) and safe file output.

Images enter as a path, a PIL image, a numpy array or a torch tensor; inside the library
they are always float32 ``(1, 3, H, W)`` in [0, 1], sRGB, upright, opaque.  Every input
either converts by the rules below or is refused with an :class:`ImageReadError` that
says what was received and what is accepted: nothing is clipped or guessed silently.
Pixel counts are checked (from the header, for files) before any pixels are decoded
(:class:`ImageTooLargeError`); a missing, truncated or corrupt file raises
:class:`ImageReadError`.  Outputs are written atomically.  Importing this module does not import torch.

Sources
    A **file** is opened with Pillow (first frame of an animation, current page of a
    multi-page TIFF) and gets its embedded ICC profile and EXIF orientation applied.  A
    **PIL image** gets exactly the same treatment (its ``info["icc_profile"]``,
    ``info["transparency"]`` and EXIF orientation included), so ``to_tensor(path) ==
    to_tensor(Image.open(path))``.  A **numpy array** or **torch tensor** carries no
    metadata: its values are taken as sRGB, upright, by the array rules below.

Values by Pillow mode (an image's value range comes from its bit depth)
    ``1``           0/1 -> black/white.
    ``L``           8-bit grey, ``/255``; grey always becomes R = G = B.
    ``LA``, ``La``  8-bit grey + alpha; ``La`` is premultiplied (see alpha).
    ``P``           the palette colours; palette or ``transparency`` alpha (see alpha).
    ``PA``          palette colours + alpha.
    ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``: 16-bit grey, ``/65535``.
    ``I``           32-bit integers have no defined range.  Values are read as 16-bit
                    levels: accepted when all lie in 0..65535 (``/65535``; 16-bit PGM
                    files open in this mode, on that scale).  Refused when a value is
                    outside 0..65535, and when the maximum is 1..255 (is it 8-bit or
                    16-bit data?), except for PGM/PPM files, whose header fixes the scale.
    ``F``           32-bit floats: accepted when finite and within [0, 1] (rounding
                    noise up to ``FLOAT_TOLERANCE`` is clamped), used as they are;
                    otherwise refused with the range found.
    ``RGB``         8-bit, ``/255`` (``transparency`` colour key: see alpha).
    ``RGBA``, ``RGBa``: 8-bit colour + alpha (``RGBa`` premultiplied); ``RGBX``: X dropped.
                    (Pillow 13 opens associated-alpha TIFFs as ``RGBA``, un-premultiplied.)
    ``CMYK``        with an embedded CMYK profile: LittleCMS (``PIL.ImageCms``) to sRGB;
                    without one: Pillow's conversion, R = (255 - C)(255 - K)/255 etc.
    ``YCbCr``       Pillow's conversion (JPEG/JFIF full-range BT.601).
    ``LAB``         CIE L*a*b* (D50, Pillow's 8-bit encoding) to sRGB with ImageCms
                    (colours outside the sRGB gamut are clipped by LittleCMS).
    ``HSV``         Pillow's conversion (the standard hexcone model, H scaled to 0..255;
                    it inverts ``convert("HSV")`` up to 8-bit rounding).
    Any other mode is refused.

16-bit colour files
    Pillow 13 opens 16-bit RGB, RGBA and grey+alpha PNGs as 8-bit ``RGB`` / ``RGBA``
    (it keeps the high byte of each sample).  This module recovers the full 16 bits with
    Pillow alone: every PNG filter works byte by byte, so decoding a copy of the file
    whose filtered samples have their two bytes swapped yields the low bytes
    (``_png16_samples``).  Such a PNG is then ``/65535`` exactly, from a path and from an
    unloaded ``Image.open(...)`` alike (an already loaded PIL image holds only the 8 bits
    Pillow kept).  16-bit binary PPM (P6, maxval 256..65535) is read directly, ``/maxval``.
    16-bit RGB(A) TIFF files (and plain-text 16-bit PPM) still come through Pillow's
    8-bit reduction: that is allowed but raises an :class:`ImageWarning` saying so.
    AVIF/WebP files with more than 8 bits are decoded to 8 bits by Pillow (undetectable).

Alpha
    Alpha is composited over white: ``c * a + (1 - a)``; premultiplied modes (``RGBa``,
    ``La``) as ``c + (1 - a)`` (a colour more than one level above its alpha is refused,
    it is not premultiplied data).  A ``transparency`` colour key (PNG ``tRNS`` for
    ``1``, ``L``, ``I;16``, ``RGB``, also in 16 bits) makes matching pixels transparent;
    for ``P`` images Pillow's palette conversion applies it.  Opaque images are unchanged.

ICC profiles
    An embedded profile is converted to sRGB with LittleCMS (perceptual intent).  A
    profile whose description names sRGB, or whose conversion moves no colour by more
    than one 8-bit level, is taken as sRGB and the pixels are not touched (so is an sRGB
    profile on a grey image).  The conversion runs on 8-bit samples (``ImageCms`` has no
    16-bit colour path), so a 16-bit image with a non-sRGB profile keeps 8 bits of precision.  A profile that
    cannot be read, or that does not describe the image's colours (an RGB profile on a
    grey image, ...), is ignored with an :class:`ImageWarning` and the pixels are taken as
    sRGB (for CMYK: Pillow's conversion).  ``LAB`` images ignore embedded profiles.

EXIF orientation
    All 8 EXIF orientations are applied (the same transposes as
    ``ImageOps.exif_transpose``; an XMP ``tiff:Orientation`` counts too).  An EXIF block
    that cannot be parsed is ignored with a warning (Pillow's own "Corrupt EXIF data",
    or an :class:`ImageWarning` when reading it raises).

Numpy arrays (values by dtype, like Pillow)
    ``uint8`` (``/255``) or ``uint16`` (``/65535``) in the Pillow/numpy layout ``(H, W)``,
    ``(H, W, 1)`` grey, ``(H, W, 2)`` grey + alpha, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA
    (straight alpha).  Other integer dtypes (``int32`` as from a mode ``I`` image,
    ``int64``, ...) follow the mode ``I`` rule.  Floats (16/32/64-bit) within [0, 1]:
    ``(H, W)`` grey like mode ``F``, ``(H, W, 3)``, or the torch layout ``(3, H, W)`` /
    ``(1, 3, H, W)``; a ``(3, H, 3)`` float array is ambiguous and refused.  ``bool``,
    complex, NaN, infinity, out-of-range values and other shapes are refused.

Torch tensors
    Floating point ``(3, H, W)`` or ``(1, 3, H, W)`` within [0, 1] (on any device, any
    float dtype).  Integer and bool tensors, NaN, infinity, values outside [0, 1] and
    other shapes are refused.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError, ImageTooLargeError, LatentCodecError, OutputExistsError

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


# --- 16-bit files Pillow reduces to 8 bits --------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PNG16_CHANNELS = {"RGB;16B": 3, "RGBA;16B": 4, "LA;16B": 2}


def _first_tile(im: Image.Image) -> Optional[tuple[str, int, Any, Optional[str]]]:
    """``(codec, offset, args, rawmode)`` of an unloaded Pillow image's first tile, or None."""
    tile = getattr(im, "tile", None) or []
    if not tile:
        return None
    codec, _extents, offset, args = tile[0][:4]
    if isinstance(args, str):
        rawmode: Optional[str] = args
    elif isinstance(args, tuple) and args and isinstance(args[0], str):
        rawmode = args[0]
    else:
        rawmode = None
    return codec, offset, args, rawmode


def _read_all(im: Image.Image) -> Optional[bytes]:
    """The whole file behind an unloaded Pillow image (its file position kept)."""
    fp = getattr(im, "fp", None)
    if fp is None:
        return None
    try:
        pos = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(pos)
    except (OSError, ValueError, AttributeError):
        return None
    return data if isinstance(data, bytes) else None


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png16_samples(data: bytes, high: np.ndarray, channels: int, max_pixels: int) -> np.ndarray:
    """Full 16-bit samples of a 16-bit RGB / RGBA / grey+alpha PNG whose high bytes
    Pillow decoded into ``high``.

    PNG filters predict each byte from the bytes one pixel to the left, above and
    above-left, i.e. from bytes in the same position of a sample: the high-byte and
    low-byte lanes never mix.  So a copy of the file with the two bytes of every filtered
    sample swapped decodes (with Pillow, which keeps the first byte) to the low bytes.
    """
    pos, ihdr, idat = len(_PNG_SIGNATURE), None, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None or len(ihdr) != 13 or not idat:
        raise ImageReadError("16-bit PNG has no IHDR or IDAT chunk")
    width, height, depth, _ctype, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    check_pixels(width, height, max_pixels)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    layout = []
    for x0, y0, dx, dy in passes:
        pw = (width - x0 + dx - 1) // dx if width > x0 else 0
        ph = (height - y0 + dy - 1) // dy if height > y0 else 0
        if pw and ph:
            layout.append((ph, pw * channels * 2))
    expected = sum(ph * (rb + 1) for ph, rb in layout)
    inflater = zlib.decompressobj()
    raw = bytearray(inflater.decompress(b"".join(idat), expected))
    if len(raw) < expected:
        raise ImageReadError(f"16-bit PNG image data is truncated ({len(raw)} of {expected} bytes)")
    lanes = np.frombuffer(raw, dtype=np.uint8)
    offset = 0
    for ph, rb in layout:
        rows = lanes[offset : offset + ph * (rb + 1)].reshape(ph, rb + 1)
        samples = rows[:, 1:].reshape(ph, rb // 2, 2)
        samples[:] = samples[..., ::-1].copy()
        offset += ph * (rb + 1)
    swapped = (
        _PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(bytes(raw), 1)) + _png_chunk(b"IEND", b"")
    )
    with Image.open(io.BytesIO(swapped)) as low_image:
        low_image.load()
        low = np.asarray(low_image)
    if low.shape != high.shape:
        raise ImageReadError("16-bit PNG decodes inconsistently")
    samples16 = (high.astype(np.uint16) << 8) | low.astype(np.uint16)
    return samples16[..., [0, 3]] if channels == 2 else samples16


def _ppm16_samples(data: bytes, im: Image.Image, offset: int, maxval: int) -> np.ndarray:
    count = im.width * im.height * 3
    if len(data) < offset + 2 * count:
        raise ImageReadError("16-bit PPM image data is truncated")
    samples = np.frombuffer(data, dtype=">u2", count=count, offset=offset).reshape(im.height, im.width, 3)
    if int(samples.max()) > maxval:
        raise ImageReadError(f"16-bit PPM has samples above its maxval {maxval}")
    return samples.astype(np.uint16)


def _deep_samples(im: Image.Image, source: str) -> Optional[tuple[str, bytes, Any]]:
    """Before ``im.load()``: the file's bytes when ``im`` is a 16-bit colour image Pillow
    reduces to 8 bits and this module reads in full (``("png", data, channels)`` or
    ``("ppm", data, (offset, maxval))``); an :class:`ImageWarning` when it cannot."""
    tile = _first_tile(im)
    if tile is None or im.mode not in ("RGB", "RGBA", "RGBa", "LA"):
        return None
    codec, offset, args, rawmode = tile
    fmt = getattr(im, "format", None)
    ppm_maxval = args[1] if fmt == "PPM" and isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], int) else 0
    if fmt == "PNG" and rawmode in _PNG16_CHANNELS:
        data = _read_all(im)
        if data is not None:
            return "png", data, _PNG16_CHANNELS[rawmode]
    elif ppm_maxval > 255:
        data = _read_all(im) if codec == "ppm" and im.mode == "RGB" else None
        if data is not None:
            return "ppm", data, (offset, ppm_maxval)
    elif rawmode is None or ";16" not in rawmode:
        return None
    warnings.warn(
        f"{source}: Pillow reads this 16-bit colour image as 8 bits per sample (rawmode {rawmode}); "
        "its precision is reduced to 8 bits",
        ImageWarning,
        stacklevel=4,
    )
    return None


# --- PIL images -> layers -------------------------------------------------------------------
def _load(im: Image.Image, source: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
    except LatentCodecError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"cannot read {source} as an image: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as exc:
        raise ImageReadError(f"cannot read image {source}: {exc}") from exc


def _key_alpha(samples: np.ndarray, key: Any, scale: float) -> Optional[np.ndarray]:
    """Alpha from a ``transparency`` colour key (PNG ``tRNS``), or None."""
    if key is None or isinstance(key, bytes):
        return None
    top = int(np.iinfo(samples.dtype).max)
    if any(not isinstance(k, int) or not 0 <= k <= top for k in (key if isinstance(key, tuple) else (key,))):
        return None  # e.g. a 16-bit key on samples Pillow reduced to 8 bits
    if samples.ndim == 2:
        if not isinstance(key, int):
            return None
        hit = samples == key
    else:
        if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(k, int) for k in key)):
            return None
        hit = (samples == np.asarray(key, dtype=samples.dtype)).all(axis=2)
    if not bool(hit.any()):
        return None
    dtype = np.uint16 if scale > 255 else np.uint8
    return np.where(hit, 0, int(scale)).astype(dtype)


def _pil_layers(im: Image.Image, source: str, deep: Optional[tuple[str, bytes, Any]], max_pixels: int) -> _Layers:
    """A loaded PIL image (any mode) -> layers, ICC profile applied."""
    mode = im.mode
    info = im.info or {}
    icc = info.get("icc_profile") or None
    key = info.get("transparency")
    layers: Optional[_Layers] = None

    if deep is not None:
        kind, data, extra = deep
        if kind == "png":
            samples = _png16_samples(data, np.asarray(im), extra, max_pixels)
            if extra == 2:
                layers = _Layers(samples[..., 0], 65535.0, samples[..., 1], 65535.0)
            elif extra == 4:
                layers = _Layers(samples[..., :3], 65535.0, samples[..., 3], 65535.0)
            else:
                layers = _Layers(samples, 65535.0, _key_alpha(samples, key, 65535.0), 65535.0)
        else:
            offset, maxval = extra
            samples = _ppm16_samples(data, im, offset, maxval)
            layers = _Layers(samples, float(maxval))
    elif mode in ("1", "L"):
        gray = np.asarray(im.convert("L") if mode == "1" else im)
        if mode == "1" and isinstance(key, int):
            key = 255 if key else 0
        layers = _Layers(gray, 255.0, _key_alpha(gray, key, 255.0))
    elif mode in ("LA", "La"):
        a = np.asarray(im)
        layers = _Layers(a[..., 0], 255.0, a[..., 1], 255.0, premultiplied=mode == "La")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in info or (im.palette is not None and "A" in im.palette.mode)
        a = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
        layers = _Layers(a[..., :3], 255.0, a[..., 3], 255.0) if has_alpha else _Layers(a, 255.0)
    elif mode.startswith("I;16"):
        if mode not in ("I;16", "I;16L", "I;16B", "I;16N"):
            raise ImageReadError(f"unsupported image mode {mode!r} in {source}")
        gray = np.asarray(im).astype(np.uint16)
        layers = _Layers(gray, 65535.0, _key_alpha(gray, key, 65535.0), 65535.0)
    elif mode == "I":
        gray = _wide_ints(np.asarray(im), f"mode I (32-bit integer) image {source}", scale_defined=getattr(im, "format", None) == "PPM")
        layers = _Layers(gray, 65535.0, _key_alpha(gray, key, 65535.0), 65535.0)
    elif mode == "F":
        layers = _Layers(_unit_floats(np.asarray(im), f"mode F (32-bit float) image {source}"), 1.0)
    elif mode == "RGB":
        rgb = np.asarray(im)
        layers = _Layers(rgb, 255.0, _key_alpha(rgb, key, 255.0))
    elif mode in ("RGBA", "RGBa"):
        a = np.asarray(im)
        layers = _Layers(a[..., :3], 255.0, a[..., 3], 255.0, premultiplied=mode == "RGBa")
    elif mode == "RGBX":
        layers = _Layers(np.asarray(im)[..., :3], 255.0)
    elif mode == "CMYK":
        return _Layers(np.asarray(_cmyk_to_rgb(im, icc, source)), 255.0)
    elif mode in ("YCbCr", "HSV"):
        layers = _Layers(np.asarray(im.convert("RGB")), 255.0)
    elif mode == "LAB":
        from PIL import ImageCms

        return _Layers(np.asarray(ImageCms.applyTransform(im, _lab_transform())), 255.0)
    else:
        raise ImageReadError(f"unsupported image mode {mode!r} in {source}")
    if icc:
        layers = _apply_icc(layers, icc, source)
    return layers


def _from_pil(im: Image.Image, source: str, max_pixels: int) -> _Pixels:
    check_pixels(im.width, im.height, max_pixels)
    deep = _deep_samples(im, source)
    _load(im, source)
    orientation = _orientation(im, source)
    pixels = _composite(_pil_layers(im, source, deep, max_pixels))
    if orientation != 1:
        pixels = _Pixels(np.ascontiguousarray(_orient(pixels.array, orientation)), pixels.scale)
    return pixels


def _open(path: str | os.PathLike, max_pixels: int) -> _Pixels:
    source = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except LatentCodecError:
        raise
    except FileNotFoundError as exc:
        raise ImageReadError(f"no such image file: {path}") from exc
    except IsADirectoryError as exc:
        raise ImageReadError(f"{path} is a folder, not an image file") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"cannot read {path} as an image: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    with im:
        return _from_pil(im, source, max_pixels)


# --- arrays and tensors ----------------------------------------------------------------------
_ACCEPTED_ARRAYS = (
    "uint8 or uint16 arrays (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) scaled by their dtype; "
    "float arrays in [0, 1] of shape (H, W), (H, W, 3), (3, H, W) or (1, 3, H, W)"
)


def _from_numpy(a: np.ndarray, max_pixels: int) -> Union[_Pixels, "torch.Tensor"]:
    what = f"numpy array of dtype {a.dtype} and shape {tuple(a.shape)}"
    kind = a.dtype.kind
    if kind == "b":
        raise ImageReadError(f"{what}: boolean images are ambiguous; pass uint8 (0/255), or Image.fromarray(mask) for mode 1")
    if kind in "ui":
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 2, 3, 4))):
            raise ImageReadError(
                f"{what} has the wrong shape; accepted: {_ACCEPTED_ARRAYS} (for channel-first data use a.transpose(1, 2, 0))"
            )
        check_pixels(int(a.shape[1]), int(a.shape[0]), max_pixels)
        if a.dtype == np.uint8:
            scale = 255.0
        elif a.dtype == np.uint16:
            scale = 65535.0
        else:
            a, scale = _wide_ints(a, what), 65535.0
        channels = 1 if a.ndim == 2 else a.shape[2]
        color = a if a.ndim == 2 else (a[..., 0] if channels <= 2 else a[..., :3])
        alpha = a[..., channels - 1] if channels in (2, 4) else None
        return _composite(_Layers(np.ascontiguousarray(color), scale, alpha, scale))
    if kind == "f":
        if a.ndim == 4 or (a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3):
            import torch

            return _from_torch(torch.from_numpy(np.ascontiguousarray(a)), max_pixels, what=what)
        if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] == 3:
            raise ImageReadError(f"{what} is ambiguous: (3, H, W) or (H, W, 3)? Add a batch axis for (1, 3, H, W), or use a uint8/uint16 (H, W, 3) array")
        if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3):
            check_pixels(int(a.shape[1]), int(a.shape[0]), max_pixels)
            return _Pixels(_unit_floats(a, what), 1.0)
        raise ImageReadError(f"{what} has the wrong shape; accepted: {_ACCEPTED_ARRAYS}")
    raise ImageReadError(f"{what}: unsupported dtype; accepted: {_ACCEPTED_ARRAYS}")


def _from_torch(image: "torch.Tensor", max_pixels: int, what: Optional[str] = None) -> "torch.Tensor":
    import torch

    if what is None:
        what = f"image tensor of dtype {str(image.dtype).replace('torch.', '')} and shape {tuple(image.shape)}"
        layout = "image tensor must be"
    else:
        layout = f"{what}: a float array in the torch layout must be"
    t = image.detach()
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] != 3:
        hint = " (channels last? use t.permute(2, 0, 1))" if image.dim() == 3 and image.shape[-1] == 3 else ""
        raise ImageReadError(f"{layout} (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}{hint}")
    if not t.is_floating_point():
        raise ImageReadError(
            f"{what}: image tensor must be floating point in [0, 1] (for 8-bit values use t.float() / 255, "
            "or pass a numpy uint8/uint16 (H, W, C) array)"
        )
    check_pixels(int(t.shape[3]), int(t.shape[2]), max_pixels)
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        nan = int(torch.isnan(t).sum())
        inf = int((~finite).sum()) - nan
        raise ImageReadError(f"image tensor contains NaN ({nan} values) or infinity ({inf} values); it must be finite in [0, 1]")
    lo, hi = float(t.min()), float(t.max())
    if lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
        hint = " (8-bit values? divide by 255)" if 1.5 < hi <= 255.0 and lo >= 0 else ""
        raise ImageReadError(f"{what} has values in [{lo:.6g}, {hi:.6g}]; image tensors must lie in [0, 1]{hint}: rescale first, nothing is clipped")
    return t.to("cpu", torch.float32).clamp(0.0, 1.0)


def _pixels(image: Any, max_pixels: int) -> Union[_Pixels, "torch.Tensor"]:
    if isinstance(image, (str, os.PathLike)):
        return _open(image, max_pixels)
    if isinstance(image, Image.Image):
        return _from_pil(image, getattr(image, "filename", None) or "PIL image", max_pixels)
    if isinstance(image, np.ndarray):
        return _from_numpy(image, max_pixels)
    torch = _torch_if_loaded()
    if torch is not None and isinstance(image, torch.Tensor):
        return _from_torch(image, max_pixels)
    raise ImageReadError(
        f"unsupported image type {type(image).__name__}; pass a path, a PIL image, a numpy array or a torch tensor"
    )


def _torch_if_loaded():  # type: ignore[no-untyped-def]
    """torch, if it is already imported (a tensor cannot exist otherwise)."""
    import sys

    return sys.modules.get("torch")


# --- public API --------------------------------------------------------------------------
def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file as 8-bit sRGB RGB (upright, alpha over white), checking its
    size before decoding the pixels.  The module docstring has the rules; 16-bit data is
    rounded to 8 bits here (:func:`to_tensor` keeps it)."""
    return Image.fromarray(np.ascontiguousarray(_open(path, max_pixels).as_uint8()), "RGB")


def to_tensor(image: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> "torch.Tensor":
    """Any supported image input -> float32 ``(1, 3, H, W)`` in [0, 1] on the CPU."""
    import torch

    pixels = _pixels(image, max_pixels)
    if isinstance(pixels, torch.Tensor):
        return pixels
    rgb = pixels.rgb()
    if rgb.dtype == np.uint8 and pixels.scale == 255.0:
        return torch.from_numpy(_owned(rgb)).permute(2, 0, 1)[None].float().div_(255.0)
    return torch.from_numpy(_owned(pixels.as_float())).permute(2, 0, 1)[None]


def _owned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable array (numpy views of PIL images are read-only)."""
    return a if a.flags.c_contiguous and a.flags.writeable else np.array(a, order="C")


def list_images(path: str | os.PathLike, *, recursive: bool = False, limit: Optional[int] = None) -> list[Path]:
    """A file -> ``[file]``; a folder -> its images (suffixes in :data:`IMAGE_SUFFIXES`,
    case-insensitive, hidden names skipped) sorted by path, in subfolders too when
    ``recursive``; the first ``limit`` of them when given."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ImageReadError(f"no such image file or folder: {path}")
    files: list[Path] = []
    has_subfolders = False
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        has_subfolders = has_subfolders or bool(dirs)
        for name in names:
            candidate = Path(folder) / name
            if not name.startswith(".") and candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file():
                files.append(candidate)
        if not recursive:
            break
    if not files:
        hint = " (it has subfolders: list them recursively)" if has_subfolders and not recursive else ""
        raise ImageReadError(f"no images ({' '.join(IMAGE_SUFFIXES)}) in {path}{hint}")
    files.sort(key=lambda p: p.relative_to(root).parts)
    return files[:limit] if limit is not None else files


def to_pil(image: "torch.Tensor") -> Image.Image:
    """Float ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] -> 8-bit RGB PIL image."""
    import torch

    t = image.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    array = (t.clamp(0, 1).mul(255).round().to(torch.uint8)).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def ensure_writable(path: str | os.PathLike, force: bool) -> None:
    """Fail early, before any work, if ``path`` exists and ``force`` is not set."""
    if os.path.lexists(path) and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it")


def atomic_write(path: str | os.PathLike, data: bytes, force: bool = False) -> None:
    """Write ``data`` via a temp file in the same directory, then rename into place.

    Without ``force`` an existing file is never replaced, even one that appeared while
    we were working (the final step is a hard link, which fails if the name exists).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise LatentCodecError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError as exc:
                raise OutputExistsError(f"{target} exists; pass --force to overwrite it") from exc
            except OSError:  # filesystems without hard links: best effort
                if os.path.lexists(target):
                    raise OutputExistsError(f"{target} exists; pass --force to overwrite it") from None
                os.replace(tmp, target)
    except OSError as exc:
        raise LatentCodecError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def save_image(image: Image.Image, path: str | os.PathLike, force: bool = False) -> None:
    """Save as PNG (or the format the suffix names) atomically."""
    suffix = Path(path).suffix.lower().lstrip(".") or "png"
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}.get(suffix)
    if fmt is None:
        raise LatentCodecError(f"cannot write images with suffix .{suffix}; use .png")
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    atomic_write(path, buf.getvalue(), force=force)
