"""Image input: every source becomes one float tensor, by the rules below.

Images enter as a path, a PIL image, a numpy array or a torch tensor; inside the library
they are always float32 ``(1, 3, H, W)`` in [0, 1], sRGB, upright, opaque.  Every input
either converts by the rules below or is refused with an :class:`ImageReadError` that
says what was received and what is accepted: nothing is clipped or guessed silently.
Pixel counts are checked (from the header, for files) before any pixels are decoded
(:class:`ImageTooLargeError`); a missing, truncated or corrupt file raises
:class:`ImageReadError`.  Importing this module does not import torch.

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

import os
import struct
import warnings
import zlib
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageReadError, LatentCodecError
from .colour import _apply_icc, _cmyk_to_rgb, _lab_transform, _orient, _orientation
from .core import DEFAULT_MAX_PIXELS, FLOAT_TOLERANCE, ImageLike, _composite, _Layers, _Pixels, _unit_floats, _wide_ints, check_pixels
from .deep import _deep_samples, _png16_samples, _ppm16_samples

if TYPE_CHECKING:
    import torch


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
