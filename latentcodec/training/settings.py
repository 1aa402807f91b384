"""The settings of a prior training run, in one place.

:class:`PriorSettings` holds the shipped ``taesd`` prior's values as its defaults; the
``train-prior`` CLI reads its defaults from here, and a checkpoint records the settings
it was made with, so a resume can refuse settings that do not match.  Importing this
module needs no torch (the CLI builds its parser from it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from ..entropy.hyperprior.context import SUBGRID_PHASES
from ..quantizers.uniform import DEFAULT_STEP


@dataclass(frozen=True)
class PriorSettings:
    """What a training run does; the defaults are the shipped prior's (README, "Entropy coders").

    ``step`` is the ``uniform`` quantizer step the symbols are made with; ``steps``,
    ``batch``, ``crop`` (side of the random latent crops), ``lr`` (peak Adam rate, cosine
    decay to 1e-4) and ``seed`` drive the optimisation; ``n`` and ``z_channels`` size the
    hyper-analysis/synthesis; ``phases`` (2, 4 or 7; 0 for none), ``hidden``, ``kernel``,
    ``kernel2``, ``kernel3`` and ``all_hyper`` shape the context networks
    (:mod:`latentcodec.entropy.hyperprior.context`); ``kernel2``/``kernel3`` left ``None``
    become 3 with 4 or 7 phases (they run on the phase subgrid) and 1 otherwise (see
    :meth:`resolved`); ``mean_bits`` sets how finely the exported tables resolve the mean.
    """

    step: float = DEFAULT_STEP
    steps: int = 4300
    batch: int = 8
    crop: int = 48
    n: int = 24
    z_channels: int = 8
    phases: int = 7
    hidden: int = 32
    kernel: int = 5
    kernel2: int | None = None
    kernel3: int | None = None
    all_hyper: bool = True
    mean_bits: int = 3
    lr: float = 2e-3
    seed: int = 0

    #: The fields that shape the networks: a checkpoint's weights fit a run only if these match.
    ARCHITECTURE: ClassVar[tuple[str, ...]] = ("n", "z_channels", "phases", "hidden", "kernel", "kernel2", "kernel3", "all_hyper")

    def resolved(self) -> PriorSettings:
        """A copy with ``kernel2`` / ``kernel3`` filled in from ``phases``."""
        later = 3 if self.phases in SUBGRID_PHASES else 1
        return replace(self, kernel2=later if self.kernel2 is None else self.kernel2, kernel3=later if self.kernel3 is None else self.kernel3)

    def record(self) -> dict[str, Any]:
        """The settings as plain values (what a checkpoint stores)."""
        return asdict(self)
