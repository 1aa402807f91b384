"""Global palettes ("codebooks"): trained once, shipped in ``latentcodec/data``, free per image.

A codebook file ``palette-<name>.npz`` holds one uint8 ``(K, C)`` palette per size K
(keys ``"2"``, ``"4"``, ... ``"256"``).  The stream stores the codebook's one-byte id,
so ids are registered here by hand and never reused; the name carries a version
(``taesd-v1``) so a retrained codebook gets a new id and file instead of changing old
streams.  Each id is pinned to the SHA-256 of its file: a file that does not have that
content (edited, replaced) is refused, never used to decode.
They are made by ``scripts/train_codebook.py`` from ``../shared/datasets/train-photos``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import CorruptStreamError, ModelError, StageConfigError

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
#: name -> (stream id 1..255, SHA-256 of its file).  Append-only.
CODEBOOKS: dict[str, tuple[int, str]] = {
    "taesd-v1": (1, "7478dfcf41b9f494677d416e9dcc1e873e6e59bc7998f8daa0df32b7157b51f6"),
}
CODEBOOK_IDS: dict[str, int] = {name: cid for name, (cid, _) in CODEBOOKS.items()}


def codebook_id(name: str) -> int:
    if name not in CODEBOOK_IDS:
        raise StageConfigError(f"palette: unknown codebook {name!r}; known: {', '.join(sorted(CODEBOOK_IDS))}")
    return CODEBOOK_IDS[name]


def codebook_name(cid: int) -> str:
    for name, i in CODEBOOK_IDS.items():
        if i == cid:
            return name
    raise CorruptStreamError(f"palette: stream names unknown codebook id {cid}")


def codebook_path(name: str) -> Path:
    return DATA_DIR / f"palette-{name}.npz"


@lru_cache(maxsize=None)
def _load(name: str) -> dict[int, np.ndarray]:
    path = codebook_path(name)
    if not path.exists():
        raise StageConfigError(f"palette: codebook file {path.name} is not installed")
    import hashlib

    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != CODEBOOKS[name][1]:
        raise ModelError(f"palette: {path} does not hold the codebook {name!r} (id {CODEBOOKS[name][0]}) that streams name; reinstall latentcodec")
    import io

    with np.load(io.BytesIO(raw)) as data:
        return {int(k): np.asarray(data[k], dtype=np.uint8) for k in data.files}


def load_codebook(name: str, colors: int) -> np.ndarray:
    """The ``colors``-entry palette of codebook ``name`` (a read-only uint8 array)."""
    codebook_id(name)
    books = _load(name)
    if colors not in books:
        raise StageConfigError(f"palette: codebook {name!r} has sizes {', '.join(map(str, sorted(books)))}, not {colors}")
    return books[colors]
