"""Where and how models run: devices, dtypes, and keeping model libraries quiet.

torch is imported only when a device or dtype is actually resolved, so importing this
module (and everything that only needs its names) stays fast.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from .errors import StageConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICES = ("auto", "cpu", "cuda")
#: dtype option -> torch dtype name (``auto``: float16 on CUDA, float32 on the CPU).
DTYPES = {"auto": None, "float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def resolve_device(device: str) -> "torch.device":
    """``auto`` -> CUDA when available, else CPU; ``cuda:N`` is accepted too."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str) and (device == "cpu" or device.startswith("cuda")):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise StageConfigError(f"device {device!r} requested but CUDA is not available")
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise StageConfigError(f"device must be one of auto, cpu, cuda[:N]; got {device!r}") from exc
    raise StageConfigError(f"device must be one of auto, cpu, cuda[:N]; got {device!r}")


def resolve_dtype(dtype: str, device: "torch.device") -> "torch.dtype":
    """``auto`` -> float16 on CUDA, float32 on the CPU."""
    import torch

    if dtype not in DTYPES:
        raise StageConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    chosen = DTYPES[dtype]
    if chosen is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, chosen)


def quiet_libraries() -> None:
    """Keep only the errors of the model libraries' logging (accelerate advice, deprecations).

    The CLI's contract is one line per error on stderr; a library's chatter would break it.
    """
    import logging
    import warnings

    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="huggingface_hub")
    warnings.filterwarnings("ignore", category=FutureWarning)


@contextlib.contextmanager
def quiet_model_loading(quiet: bool = True) -> Iterator[None]:
    """Silence diffusers/transformers loading chatter and progress bars while ``quiet``."""
    if not quiet:
        yield
        return
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = (dlog.get_verbosity(), tlog.get_verbosity())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(levels[0])
        tlog.set_verbosity(levels[1])
        tlog.enable_progress_bar()
