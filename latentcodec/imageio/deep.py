"""16-bit files Pillow reduces to 8 bits: recover the full samples of 16-bit PNG and PPM files."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from PIL import Image

from ..errors import ImageReadError

if TYPE_CHECKING:
    pass

from .core import ImageWarning, check_pixels

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
