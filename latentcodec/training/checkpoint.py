"""Float checkpoints of a prior training run (``NAME-checkpoint.pt`` beside the priors).

The exported priors are integers only; a checkpoint keeps what they cannot: the float
weights, Adam's and the schedule's state, both RNG states, the step count and the
settings, so a run can be *resumed* (``train-prior --resume``: the same command gives
the same prior files as an uninterrupted run) or used to *start* a new one from its
weights (``--init``: fine-tuning, e.g. more steps or other photos).  A checkpoint is a
``torch.save`` archive of tensors and plain values only, loaded with
``weights_only=True`` (no pickled code runs), and written atomically, so an interrupted
write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from .settings import PriorSettings

if TYPE_CHECKING:
    from .optimise import Optimisation

FORMAT = "latentcodec-prior-checkpoint"
VERSION = 1
#: Default of ``train-prior --checkpoint-every`` (a few minutes of a 2-core CPU).
CHECKPOINT_EVERY = 500


def checkpoint_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}-checkpoint.pt"


def data_digest(symbols: list[np.ndarray]) -> str:
    """Identity of the training symbols (shapes and values), so a resume refuses other data."""
    h = hashlib.sha256()
    for s in symbols:
        h.update(repr(s.shape).encode())
        h.update(np.ascontiguousarray(s, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def save_checkpoint(path: Path, state: dict[str, Any], settings: PriorSettings, channels: int, data: str, init_steps: int) -> None:
    """Write ``state`` (:meth:`Optimisation.state_dict`) with what a resume checks it against.

    ``init_steps`` is how many steps the run's initial weights had already been trained (``--init``).
    """
    import torch

    from ..imageio import atomic_write

    record = {"format": FORMAT, "version": VERSION, "settings": settings.record(), "channels": channels, "data": data, "init_steps": init_steps, "state": state}
    buf = io.BytesIO()
    torch.save(record, buf)
    atomic_write(path, buf.getvalue(), force=True)


@dataclass(frozen=True)
class CheckpointWriter:
    """Writes a run's checkpoint to ``path`` every ``every`` steps (0: never) before its
    last, when called after each step, and on :meth:`save`; ``log`` hears of each."""

    path: Path
    settings: PriorSettings
    channels: int
    data: str
    init_steps: int
    every: int
    log: Callable[[str], None]

    def __call__(self, opt: Optimisation) -> None:
        if self.every and opt.step % self.every == 0 and opt.step < self.settings.steps:
            self.save(opt)

    def save(self, opt: Optimisation) -> None:
        save_checkpoint(self.path, opt.state_dict(), self.settings, self.channels, self.data, self.init_steps)
        self.log(f"checkpoint at step {opt.step}: {self.path}")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's record (tensors on the CPU); :class:`ModelError` if it is not one."""
    import torch

    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"no such checkpoint: {path}") from None
    except Exception as exc:  # not a torch archive, damaged, or holding more than tensors and plain values
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ModelError(f"cannot read checkpoint {path}: {type(exc).__name__}: {first_line}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelError(f"{path} is not a latentcodec prior checkpoint")
    if record.get("version") != VERSION:
        raise ModelError(f"{path}: checkpoint version {record.get('version')!r}, this latentcodec reads version {VERSION}")
    return record


def check_fits(record: dict[str, Any], path: str | Path, settings: PriorSettings, channels: int, data: str, *, resume: bool) -> None:
    """Refuse a checkpoint that does not fit this run, with one line naming what differs.

    Resuming needs every setting and the training data to match; starting from its
    weights (``resume=False``) needs only the network shapes (:attr:`PriorSettings.ARCHITECTURE`).
    """
    names = [f.name for f in fields(PriorSettings)] if resume else list(PriorSettings.ARCHITECTURE)
    have = {**record["settings"], "channels": record["channels"]}
    want = {**settings.record(), "channels": channels}
    differ = [k for k in ("channels", *names) if have.get(k) != want[k]]
    if differ:
        said = ", ".join(f"{k} {have.get(k)!r} (this run: {want[k]!r})" for k in differ)
        raise ModelError(f"checkpoint {Path(path).name} does not fit: it has {said}")
    if resume and record["data"] != data:
        raise ModelError(f"checkpoint {Path(path).name} was trained on other symbols (other photos, --scales, --image-crop or --step)")
