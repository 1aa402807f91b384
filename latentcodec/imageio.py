"""Image conversion and safe file output.

Images enter as a path, a PIL image or a float tensor ``(3, H, W)`` / ``(1, 3, H, W)`` in
[0, 1]; inside the library they are always float32 ``(1, 3, H, W)``.  Pixel counts are
checked from the header before a file is decoded, and outputs are written atomically.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError, ImageTooLargeError, LatentCodecError, OutputExistsError

#: Default pixel limit for inputs (4096 x 4096); raise it with ``max_pixels=``.
DEFAULT_MAX_PIXELS = 4096 * 4096

ImageLike = Union[str, os.PathLike, Image.Image, torch.Tensor, np.ndarray]


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageReadError(f"image has an empty side ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image of {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
            "(pass max_pixels / --max-pixels to raise it)"
        )


def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file as RGB, checking its size before decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            check_pixels(im.width, im.height, max_pixels)
            im.load()
    except LatentCodecError:
        raise
    except FileNotFoundError as exc:
        raise ImageReadError(f"no such image file: {path}") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"cannot read {path} as an image: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        if "A" in im.getbands() or im.mode == "P":
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        im = im.convert("RGB")
    return im


def to_tensor(image: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Any supported image input -> float32 ``(1, 3, H, W)`` in [0, 1] on the CPU."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image, max_pixels)
    if isinstance(image, Image.Image):
        check_pixels(image.width, image.height, max_pixels)
        if image.mode != "RGB":
            image = image.convert("RGB")
        array = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float().div_(255.0)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.dim() == 3:
            t = t[None]
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] != 3:
            raise ImageReadError(f"image tensor must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        if not t.is_floating_point():
            raise ImageReadError("image tensor must be floating point in [0, 1]")
        check_pixels(int(t.shape[3]), int(t.shape[2]), max_pixels)
        if not torch.isfinite(t).all():
            raise ImageReadError("image tensor contains NaN or infinity")
        return t.to("cpu", torch.float32).clamp(0.0, 1.0)
    raise ImageReadError(f"unsupported image type {type(image).__name__}")


def to_pil(image: torch.Tensor) -> Image.Image:
    """Float ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] -> 8-bit RGB PIL image."""
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
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def save_image(image: Image.Image, path: str | os.PathLike, force: bool = False) -> None:
    """Save as PNG (or the format the suffix names) atomically."""
    import io

    suffix = Path(path).suffix.lower().lstrip(".") or "png"
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}.get(suffix)
    if fmt is None:
        raise LatentCodecError(f"cannot write images with suffix .{suffix}; use .png")
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    atomic_write(path, buf.getvalue(), force=force)
