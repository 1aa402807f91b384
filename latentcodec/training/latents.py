"""Latents of an image folder, computed once per transform and image and cached as ``.npy``.

Each cache entry is keyed by the transform's weight fingerprint and precision, the file's
name, size and mtime, the crop and the scale, so a changed model or image recomputes
instead of reusing stale latents, and an interrupted run keeps what it finished.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..imageio import list_images


def _key(transform, f: Path, crop: int | None, scale: float = 1.0) -> str:  # type: ignore[no-untyped-def]
    st = f.stat()
    text = f"{transform.fingerprint().hex()}:{f.resolve()}:{st.st_size}:{int(st.st_mtime)}:{crop}"
    if scale != 1.0:
        text += f":scale={scale!r}"
    dtype = getattr(transform, "dtype", "float32")  # float32 keys stay what they were before dtypes counted
    if dtype != "float32":
        text += f":dtype={dtype}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _center_crop(x, crop: int | None):  # type: ignore[no-untyped-def]
    """Centre crop of an image tensor to at most ``crop`` pixels a side (training only:
    the priors train on random latent crops anyway, and TAESD's cost is per pixel)."""
    if crop is None:
        return x
    h, w = x.shape[-2:]
    ch, cw = min(h, crop), min(w, crop)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def _resized(f: Path, scale: float):  # type: ignore[no-untyped-def]
    """The image at ``scale`` (Lanczos), so one photo also yields coarser-detail latents."""
    from PIL import Image

    from ..imageio import open_image, to_tensor

    if scale == 1.0:
        return to_tensor(f)
    image = open_image(f)
    size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
    return to_tensor(image.resize(size, Image.LANCZOS))


def folder_latents(  # type: ignore[no-untyped-def]
    transform, folder: str | Path, cache_dir: str | Path | None = None, progress: bool = True, crop: int | None = None, scale: float = 1.0
) -> list[np.ndarray]:
    """Float32 latents ``(C, h, w)`` of every image in ``folder`` (cached in ``cache_dir``).

    ``scale`` resizes each image first; ``crop`` then centre-crops it.
    """
    from tqdm import tqdm

    if not 0.05 <= scale <= 1.0:
        raise ValueError(f"scale must be in [0.05, 1], got {scale}")
    files = list_images(folder)
    out = []
    desc = f"{transform.name} latents" + (f" x{scale:g}" if scale != 1.0 else "")
    for f in tqdm(files, desc=desc, disable=not progress, unit="img"):
        entry = Path(cache_dir) / f"latent-{transform.name}-{_key(transform, f, crop, scale)}.npy" if cache_dir else None
        if entry is not None and entry.exists():
            out.append(np.load(entry))
            continue
        latent = transform.analysis(_center_crop(_resized(f, scale), crop))[0].numpy().astype(np.float32)
        if entry is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_suffix(".tmp.npy")
            np.save(tmp, latent)
            tmp.replace(entry)
        out.append(latent)
    return out
