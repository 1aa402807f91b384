"""Rate control: the highest-quality setting of a chain whose stream fits a byte budget.

The transform runs once; only quantization and entropy coding are repeated while the
quantizer's *rate parameter* (:mod:`latentcodec.rate`) is searched: the ``uniform`` step
and the ``uint8`` half range by bisection in log space (continuous, so the budget is met
to a fraction of a percent), the ``palette`` size by integer bisection.  The chosen value is part of the
quantizer's wire params, so ``latentcodec info`` shows it.

With the encoder search (``search``, :mod:`latentcodec.rdo`) the budget still holds: the
rate parameter is first chosen for the plain encoder (cheap), the search runs there, and
if its stream is larger than the budget the plain encoder's target is lowered by the
overshoot and the search runs again at the value chosen for it, at most
:data:`SEARCH_TRIES` searches; if none fits, the plain encoder's stream is returned with a
warning.  The search's rate term keeps it close to the plain encoder's size, so one or two
searches are usual.

>>> import numpy as np
>>> from latentcodec.codec import Codec
>>> from latentcodec.entropy.ans import ANSCoder
>>> from latentcodec.quantizers.uniform import UniformQuantizer
>>> from latentcodec.stages import Transform
>>> class Identity(Transform):  # a stand-in transform: the "image" already is a latent
...     name = "identity"
...     latent_channels, downsampling_factor = 4, 8
...     def analysis(self, image): return image
...     def synthesis(self, latent): return latent
...     def fingerprint(self): return b"test"
>>> codec = Codec(Identity(), UniformQuantizer(), ANSCoder())
>>> latent = np.random.default_rng(0).normal(size=(4, 32, 32)).astype(np.float32)
>>> result = compress_latent_to_target(codec, latent, (256, 256), target_bytes=900)
>>> assert 850 <= len(result.data) <= 900 and result.parameter == "step"
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import RateControlError, StageConfigError, StageInputError
from .imageio import ImageLike, to_tensor
from .rate import RateParameter, rate_parameter, with_rate

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .rdo.efforts import SearchSettings

#: Searches tried per image under a byte budget (each one a full search at the effort's steps).
SEARCH_TRIES = 4


@dataclass(frozen=True)
class RateResult:
    data: bytes
    parameter: str
    value: float | int
    evaluations: int
    #: Searches run (0 without an encoder search).
    searches: int = 0
    #: Whether ``data`` is a searched stream (False: the plain encoder's).
    searched: bool = False


def target_from_bpp(bpp: float, image_size: tuple[int, int]) -> int:
    """Bytes allowed for ``bpp`` bits per pixel of a ``(width, height)`` image."""
    if not math.isfinite(bpp) or bpp <= 0:
        raise StageConfigError(f"target bpp must be positive, got {bpp}")
    return int(math.floor(bpp * image_size[0] * image_size[1] / 8.0))


def _search(encode: Callable[[float], bytes], p: RateParameter, target: int) -> tuple[bytes, float, int]:
    """Largest-rate value whose stream fits; assumes size is (nearly) monotone in the value."""
    evaluations = 0

    def size_of(v: float) -> bytes:
        nonlocal evaluations
        evaluations += 1
        return encode(v)

    coarse_data = size_of(p.coarsest)
    if len(coarse_data) > target:
        raise RateControlError(
            f"cannot fit {target} bytes: the smallest achievable size is {len(coarse_data)} bytes "
            f"({p.name}={p.coarsest:g})"
        )
    fine_data = size_of(p.finest)
    if len(fine_data) <= target:
        return fine_data, p.finest, evaluations
    best = (coarse_data, p.coarsest)
    a, b = p.coarsest, p.finest  # invariant: a fits, b does not
    for _ in range(40):
        if p.integer:
            if abs(b - a) <= 1:
                break
            mid: float = int((a + b) // 2)
        else:
            if abs(math.log(b / a)) < 1e-4 or len(best[0]) >= target * 0.998:
                break
            mid = math.sqrt(a * b)
        data = size_of(mid)
        if len(data) <= target:
            a = mid
            if len(data) > len(best[0]):
                best = (data, mid)
        else:
            b = mid
    return best[0], best[1], evaluations


def compress_latent_to_target(
    codec: Any,
    latent: np.ndarray,
    image_size: tuple[int, int],
    *,
    target_bytes: int,
    image: "torch.Tensor | None" = None,
    search: "SearchSettings | None" = None,
) -> RateResult:
    """Search the codec's quantizer rate parameter for a latent already transformed.

    ``search`` (effort above 0; ``image`` is then the ``(1, 3, H, W)`` tensor ``latent`` is
    the analysis of): the searched stream that fits, as the module docstring says."""
    from .codec import Codec

    if isinstance(target_bytes, bool) or not isinstance(target_bytes, (int, np.integer)) or target_bytes <= 0:
        raise StageConfigError(f"target bytes must be a positive integer, got {target_bytes!r}")
    p = rate_parameter(codec.quantizer)
    target = int(target_bytes)

    def trial(value: float) -> Any:
        return Codec(codec.transform, with_rate(codec.quantizer, value), codec.entropy_coder, codec.refiner, max_pixels=codec.max_pixels)

    def encode(value: float) -> bytes:
        return trial(value).compress_latent(latent, image_size)  # type: ignore[no-any-return]

    def result(data: bytes, value: float, evaluations: int, searches: int = 0, searched: bool = False) -> RateResult:
        return RateResult(data, p.name, int(value) if p.integer else value, evaluations, searches, searched)

    data, value, evaluations = _search(encode, p, target)
    if search is None or not search.steps:
        return result(data, value, evaluations)
    if image is None:
        raise StageInputError(f"effort {search.effort} searches through the decoder: pass the image the latent came from")
    aim, tried = target, value
    for searches in range(1, SEARCH_TRIES + 1):
        searched = trial(tried).compress_latent(latent, image_size, image=image, search=search)
        evaluations += 1
        if len(searched) <= target:
            return result(searched, tried, evaluations, searches, True)
        aim = int(math.floor(aim * target / len(searched)))  # aim the plain encoder lower by the overshoot
        try:
            _, lower, n = _search(encode, p, aim)
        except RateControlError:
            break  # the plain encoder cannot go that low
        evaluations += n
        if lower == tried:
            break
        tried = lower
    warnings.warn(
        f"effort {search.effort}: no searched stream fit {target} bytes in {searches} searches; wrote the plain encoder's stream",
        RuntimeWarning,
        stacklevel=2,
    )
    return result(data, value, evaluations, searches, False)


def compress_to_target(
    codec_or_preset: Any,
    image: ImageLike,
    *,
    target_bytes: int | None = None,
    target_bpp: float | None = None,
    **options: Any,
) -> RateResult:
    """Compress ``image`` to at most ``target_bytes`` (or ``target_bpp``) bytes.

    ``codec_or_preset`` is a :class:`~latentcodec.Codec` or a preset name (then
    ``options`` go to :meth:`Codec.from_preset`).  The transform runs once.  Raises
    :class:`RateControlError` with the smallest achievable size when nothing fits.
    The encoder search settings of :meth:`Codec.compress` (``effort=``, ``lmbda=``,
    ``distortion=``, ``progress=``) compose with the budget (module docstring).
    """
    import torch

    from .codec import SEARCH_KEYS, Codec, search_settings

    settings = search_settings(**{k: options.pop(k) for k in SEARCH_KEYS if k in options})
    codec = Codec.from_preset(codec_or_preset, **options) if isinstance(codec_or_preset, str) else codec_or_preset
    if (target_bytes is None) == (target_bpp is None):
        raise StageConfigError("give exactly one of target_bytes and target_bpp")
    tensor = to_tensor(image, codec.max_pixels)
    size = (int(tensor.shape[-1]), int(tensor.shape[-2]))
    if target_bytes is None:
        assert target_bpp is not None
        target_bytes = target_from_bpp(float(target_bpp), size)
    with torch.inference_mode():
        latent = codec.transform.analysis(tensor)[0].numpy()
    return compress_latent_to_target(codec, latent, size, target_bytes=target_bytes, image=tensor, search=settings)
