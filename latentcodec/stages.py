"""The four stage contracts: transform, quantizer, entropy coder and refiner.

A stage's constructor arguments are its config (as in diffusers), so
``type(stage).from_config(stage.get_config())`` rebuilds an equivalent stage.  A
subclass names only the arguments it adds or whose default it changes and passes the
rest on with ``**kwargs``: the config keys are collected along the class hierarchy.  The
subset of the config that a decoder needs travels in the stream as compact bytes
(:meth:`Stage.wire_params`); options that only affect where or how fast a stage runs
(``device``, ``model``) are *runtime options* and never enter the stream.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

import numpy as np

from .errors import CorruptStreamError, StageConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .rate import RateParameter
    from .rdo.grid import LatentGrid
    from .rdo.rate import RateModel

StageKind = Literal["transform", "quantizer", "entropy_coder", "refiner"]
STAGE_KINDS: tuple[StageKind, ...] = ("transform", "quantizer", "entropy_coder", "refiner")


def config_defaults(cls: type) -> dict[str, Any]:
    """Config key -> default (``inspect.Parameter.empty`` if required), along the MRO.

    Walks ``__init__`` from the most derived class up; a constructor without
    ``**kwargs`` ends the walk (it does not forward anything to its parent).
    """
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        for p in params:
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in out:
                out[p.name] = p.default
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out


class Stage(ABC):
    """Common base: a registered name, a version and a round-tripping config."""

    kind: ClassVar[StageKind]
    #: The name the stage is registered under (its entry point name).
    name: ClassVar[str]
    #: Bumped whenever the stage's wire params or its coded data change meaning (0-15).
    version: ClassVar[int] = 1
    #: Versions a decoder of this class reads (None: only :attr:`version`).  A version once
    #: written stays listed, or its streams are refused by name; never misdecoded.
    supported_versions: ClassVar[tuple[int, ...] | None] = None
    #: Config keys that never travel in the stream (where/how the stage runs).
    runtime_options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The valid config keys: the constructor's named arguments, and its parents' where
        it forwards ``**kwargs`` to them (most derived first)."""
        return tuple(config_defaults(cls))

    def get_config(self) -> dict[str, Any]:
        """Every constructor argument, read back from the attribute of the same name."""
        return {key: getattr(self, key) for key in self.config_keys()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Stage":
        """Build the stage from a config dict; unknown keys are a :class:`StageConfigError`."""
        valid = cls.config_keys()
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise StageConfigError(
                f"{cls.kind} {cls.name!r} has no option {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(valid) or '(none)'}"
            )
        try:
            return cls(**dict(config))
        except (TypeError, ValueError) as exc:
            raise StageConfigError(f"{cls.kind} {cls.name!r}: {exc}") from exc

    # --- the stream -----------------------------------------------------------------
    def wire_params(self) -> bytes:
        """The config a decoder needs, as compact bytes (empty by default)."""
        return b""

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        """Inverse of :meth:`wire_params`; raise :class:`CorruptStreamError` on bad bytes."""
        if params:
            raise CorruptStreamError(f"{cls.kind} {cls.name!r} takes no stream parameters")
        return {}

    @classmethod
    def config_from_record(cls, params: bytes, version: int) -> dict[str, Any]:
        """The config for a stream record of stage ``version`` (one of ``supported_versions``).

        A stage whose params changed meaning between versions overrides this to read old
        streams; by default the params mean the same in every supported version.
        """
        return cls.config_from_wire(params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Transform(Stage):
    """Image <-> latent.  Images are float tensors ``(B, 3, H, W)`` in [0, 1]."""

    kind: ClassVar[StageKind] = "transform"
    #: Latent space family; refiners check it (``"sd"``: Stable Diffusion 1.x/2.x latents).
    latent_space: ClassVar[str] = "sd"

    @property
    @abstractmethod
    def latent_channels(self) -> int:
        """Channels of the latent (4 for Stable Diffusion 1.x/2.x/XL)."""

    @property
    @abstractmethod
    def downsampling_factor(self) -> int:
        """Spatial factor between image and latent (8 for SD); a power of two."""

    @abstractmethod
    def analysis(self, image: "torch.Tensor") -> "torch.Tensor":
        """Encode ``(B, 3, H, W)`` in [0, 1] to a float32 CPU latent ``(B, C, H/f, W/f)``.

        Sides that are not multiples of the downsampling factor are padded.
        """

    @abstractmethod
    def synthesis(self, latent: "torch.Tensor") -> "torch.Tensor":
        """Decode a latent ``(B, C, h, w)`` to a float32 CPU image in [0, 1]."""

    @abstractmethod
    def fingerprint(self) -> bytes:
        """Four bytes identifying the weights; stored in the stream."""

    # --- encoder search (optional; :mod:`latentcodec.rdo`) ----------------------------
    #: Whether :meth:`differentiable_synthesis` gives gradients.  Only such a transform lets
    #: the encoder search the latent through its decoder (``effort > 0``); the others get a
    #: one-line error naming the effort option, never a silent fallback.
    differentiable: ClassVar[bool] = False

    def differentiable_synthesis(self, latent: "torch.Tensor") -> "torch.Tensor":
        """:meth:`synthesis` with gradients with respect to ``latent`` ``(B, C, h, w)``.

        Runs on :attr:`compute_device` in the transform's own precision (``latent`` is moved
        there) and returns a float image in [0, 1] on that device, clamped like the real
        decode and computed the same way (tiles included), since the search optimises what
        the decoder will show.  Must not switch gradients off (no ``inference_mode``).
        """
        raise StageConfigError(f"transform {self.name!r} cannot give gradients")

    @property
    def compute_device(self) -> "torch.device":
        """Where the transform computes (the search puts its tensors there); the CPU by default."""
        import torch

        return torch.device("cpu")

    @property
    def compute_dtype(self) -> "torch.dtype":
        """The transform's own precision (the search autocasts to bf16 only from float32)."""
        import torch

        return torch.float32


@dataclass(frozen=True)
class Quantized:
    """What a quantizer produces: integer symbols plus side info for the decoder."""

    symbols: np.ndarray
    side_info: bytes = b""


class Quantizer(Stage):
    """Float latent ``(C, h, w)`` <-> integer symbols of the same shape."""

    kind: ClassVar[StageKind] = "quantizer"
    #: The option that sets the rate (a :class:`latentcodec.rate.RateParameter`), if any:
    #: rate control, ``--quality`` and evaluation sweeps use it.
    rate_parameter: ClassVar["RateParameter | None"] = None

    @abstractmethod
    def quantize(self, latent: np.ndarray) -> Quantized:
        """Map a float32 latent to int32 symbols and side info."""

    @abstractmethod
    def dequantize(self, symbols: np.ndarray, side_info: bytes = b"") -> np.ndarray:
        """Map symbols (and the stream's side info) back to a float32 latent."""

    def residual_std(self, side_info: bytes = b"") -> float | None:
        """Estimated std of the quantization error, for refiners (None: unknown)."""
        return None

    def symbol_shape(self, latent_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the symbols for a latent of ``latent_shape`` (a palette has one per pixel)."""
        return tuple(latent_shape)

    def latent_grid(self) -> "LatentGrid | None":
        """The quantizer as an affine scalar grid in step units, for the encoder's search
        (:class:`latentcodec.rdo.LatentGrid`): ``quantize`` must give ``grid.hard(grid.to_units(latent))``
        and ``dequantize`` its ``to_latent``.  None (the default): no differentiable proxy,
        so ``effort > 0`` is refused with a one-line error.
        """
        return None


class EntropyCoder(Stage):
    """Lossless coding of an int32 symbol array."""

    kind: ClassVar[StageKind] = "entropy_coder"

    @abstractmethod
    def encode(self, symbols: np.ndarray) -> bytes:
        """Losslessly code an integer array; the shape is not stored."""

    @abstractmethod
    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Return exactly the int32 array that was encoded, given its shape."""

    def rate_model(self, device: "torch.device") -> "RateModel | None":
        """A differentiable estimate of this coder's bits for the encoder's search, with its
        tensors on ``device`` (:class:`latentcodec.rdo.rate.RateModel`: ``begin(y0)`` and
        ``bits(y_hat, step)`` on float symbols ``(1, C, h, w)``).  It only steers the search:
        the stream is always this coder's real output.  None (the default): ``effort > 0`` is
        refused with a one-line error.
        """
        return None


@dataclass
class RefineContext:
    """What a refiner may know besides the latent."""

    image_size: tuple[int, int]  # (width, height) of the original image
    quantizer: Quantizer | None = None
    side_info: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)


class Refiner(Stage):
    """Dequantized latent -> image; may use the transform's decoder."""

    kind: ClassVar[StageKind] = "refiner"
    #: Latent spaces this refiner understands (None: any).
    latent_spaces: ClassVar[frozenset[str] | None] = None

    @abstractmethod
    def refine(self, latent: "torch.Tensor", transform: Transform, context: RefineContext) -> "torch.Tensor":
        """Turn ``(1, C, h, w)`` into a float32 CPU image ``(1, 3, H, W)`` in [0, 1]."""


STAGE_BASES: dict[StageKind, type[Stage]] = {
    "transform": Transform,
    "quantizer": Quantizer,
    "entropy_coder": EntropyCoder,
    "refiner": Refiner,
}
