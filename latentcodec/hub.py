"""Loading weights: from a local path or the hub, with a clear offline error; weight fingerprints.

Nothing here downloads at import time.  A hub id is first looked up in the local cache;
only if that fails and the hub is not disabled (``HF_HUB_OFFLINE=1``) is a download
attempted, and any failure becomes a :class:`ModelNotFoundError` that names the option
that points at a local copy.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .errors import ModelError, ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import torch

T = TypeVar("T")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_pretrained(
    loader: Callable[..., T],
    source: str,
    *,
    what: str,
    option: str = "--model",
    **kwargs: Any,
) -> T:
    """Call a diffusers/transformers ``from_pretrained`` on a local directory or hub id."""
    path = Path(source).expanduser()
    if path.exists():
        try:
            return loader(str(path), **kwargs)
        except Exception as exc:
            raise ModelError(f"cannot load {what} from {path}: {type(exc).__name__}: {exc}") from exc
    if source.startswith((".", "/", "~")) or os.sep in source.strip("/").replace("/", "", 1):
        raise ModelNotFoundError(f"{what}: no such file or directory {source!r}")
    try:
        return loader(source, local_files_only=True, **kwargs)
    except Exception as cached_exc:
        if hub_offline():
            raise ModelNotFoundError(
                f"{what} {source!r} is not in the local cache and the hub is offline; "
                f"download it on a connected machine and pass its directory with {option} PATH"
            ) from cached_exc
    try:
        return loader(source, **kwargs)
    except Exception as exc:
        raise ModelNotFoundError(
            f"cannot fetch {what} {source!r} from the hub ({type(exc).__name__}); it is not cached "
            f"either. If this machine is offline, pass a local copy with {option} PATH"
        ) from exc


def weights_fingerprint(module: "torch.nn.Module", nbytes: int = 4) -> bytes:
    """Hash of parameter names and float32 values, independent of device and dtype casts.

    Computed once on the float32 CPU weights at load time, before any fp16 cast.
    """
    import numpy as np
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy()).tobytes())
    return h.digest()[:nbytes]
