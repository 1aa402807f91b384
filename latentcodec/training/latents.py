"""Latents of an image folder, computed once per transform and cached as ``.npz``.

The cache key is the transform's weight fingerprint plus each file's name, size and
mtime, so a changed model or image recomputes instead of reusing stale latents.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"no such image folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageReadError(f"no images in {folder}")
    return files


def _key(transform, files: Sequence[Path]) -> str:  # type: ignore[no-untyped-def]
    h = hashlib.sha256(transform.fingerprint())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def folder_latents(transform, folder: str | Path, cache_dir: str | Path | None = None, progress: bool = True) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Float32 latents ``(C, h, w)`` of every image in ``folder`` (cached in ``cache_dir``)."""
    from ..imageio import to_tensor

    files = list_images(folder)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"latents-{transform.name}-{_key(transform, files)}.npz"
        if cache.exists():
            with np.load(cache) as npz:
                return [npz[f"a{i}"] for i in range(len(files))]
    from tqdm import tqdm

    out = []
    for f in tqdm(files, desc=f"{transform.name} latents", disable=not progress, unit="img"):
        out.append(transform.analysis(to_tensor(f))[0].numpy().astype(np.float32))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"a{i}": a for i, a in enumerate(out)})
        tmp.replace(cache)
    return out
