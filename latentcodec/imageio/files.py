"""Image files in and out: listing a folder, 8-bit output, atomic writes that never overwrite by accident."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from PIL import Image

from ..errors import ImageReadError, LatentCodecError, OutputExistsError, StageConfigError
from .core import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import torch


def list_images(
    path: str | os.PathLike, *, recursive: bool = False, limit: Optional[int] = None, suffixes: tuple[str, ...] = IMAGE_SUFFIXES
) -> list[Path]:
    """A file -> ``[file]``; a folder -> its images (``suffixes``, by default
    :data:`IMAGE_SUFFIXES`, case-insensitive, hidden names skipped) sorted by path, in
    subfolders too when ``recursive``; the first ``limit`` of them when given.  Batch
    decompression lists ``.lc`` streams with ``suffixes=(".lc",)``."""
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise StageConfigError(f"limit must be a positive integer or None, got {limit!r}")
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
            if not name.startswith(".") and candidate.suffix.lower() in suffixes and candidate.is_file():
                files.append(candidate)
        if not recursive:
            break
    if not files:
        hint = " (it has subfolders: list them recursively)" if has_subfolders and not recursive else ""
        what = "images" if suffixes == IMAGE_SUFFIXES else "files"
        raise ImageReadError(f"no {what} ({' '.join(suffixes)}) in {path}{hint}")
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


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _umask_mode()


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
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; outputs get the usual umask permissions
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


def encode_image(image: Image.Image, path: str | os.PathLike) -> bytes:
    """The file bytes of ``image`` in the format ``path``'s suffix names (PNG without one, and for ``-``)."""
    suffix = Path(path).suffix.lower().lstrip(".") or "png"
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}.get(suffix)
    if fmt is None:
        raise LatentCodecError(f"cannot write images with suffix .{suffix}; use .png")
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def save_image(image: Image.Image, path: str | os.PathLike, force: bool = False) -> None:
    """Save as PNG (or the format the suffix names) atomically."""
    atomic_write(path, encode_image(image, path), force=force)
