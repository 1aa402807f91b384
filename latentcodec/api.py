"""One-call compression: ``latentcodec.compress(image)`` and ``latentcodec.decompress(data)``.

Every call builds its chain afresh (cheap), but the stages that load weights (the
transform, a diffusion refiner) come from :mod:`latentcodec.modelcache`: a loop of calls
loads and hashes each model once, as a diffusers pipeline kept in a variable would.

>>> import latentcodec
>>> data = latentcodec.compress("../shared/datasets/kodak/kodim23.png", model="../shared/models/taesd", quality=40)
>>> image = latentcodec.decompress(data, model="../shared/models/taesd")
>>> image.size
(768, 512)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Mapping, overload

from . import registry
from .codec import SEARCH_KEYS, Codec, CompressResult
from .decoding import check_transform, decode_latent, read_stream, render, resolve_refiner, stage_from_record
from .errors import WeightsMismatchError
from .imageio import DEFAULT_MAX_PIXELS, ImageLike
from .modelcache import shared
from .presets import DEFAULT_PRESET
from .stages import Refiner, Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


def codec_for(preset: str = DEFAULT_PRESET, *, quality: float | None = None, **options: Any) -> Codec:
    """:meth:`Codec.from_preset`, with its transform and refiner taken from the model cache."""
    codec = Codec.from_preset(preset, quality=quality, **options)
    codec.transform = shared(codec.transform)
    codec.refiner = shared(codec.refiner)
    return codec


@overload
def compress(image: ImageLike, preset: str = ..., *, quality: float | None = ..., return_result: Literal[False] = ..., **options: Any) -> bytes: ...
@overload
def compress(image: ImageLike, preset: str = ..., *, quality: float | None = ..., return_result: Literal[True], **options: Any) -> CompressResult: ...
def compress(
    image: ImageLike, preset: str = DEFAULT_PRESET, *, quality: float | None = None, return_result: bool = False, **options: Any
) -> bytes | CompressResult:
    """Compress one image with a preset; ``options`` as for :meth:`Codec.from_preset`
    (``model=``, ``device=``, ``step=``, ``quantizer=``...), ``quality`` 0..100; the encoder
    search settings of :meth:`Codec.compress` (``effort=``, ``lmbda=``, ``distortion=``,
    ``progress=``) go to it."""
    search = {k: options.pop(k) for k in SEARCH_KEYS if k in options}
    return codec_for(preset, quality=quality, **options).compress(image, return_result=return_result, **search)  # type: ignore[call-overload, no-any-return]


@overload
def decompress(
    data: bytes,
    *,
    model: str | None = ...,
    device: str | None = ...,
    dtype: str | None = ...,
    transform: str | None = ...,
    refiner: str | Refiner | None = ...,
    refiner_options: Mapping[str, Any] | None = ...,
    ignore_weights: bool = ...,
    max_pixels: int = ...,
    as_tensor: Literal[False] = ...,
) -> "Image.Image": ...
@overload
def decompress(
    data: bytes,
    *,
    model: str | None = ...,
    device: str | None = ...,
    dtype: str | None = ...,
    transform: str | None = ...,
    refiner: str | Refiner | None = ...,
    refiner_options: Mapping[str, Any] | None = ...,
    ignore_weights: bool = ...,
    max_pixels: int = ...,
    as_tensor: Literal[True],
) -> "torch.Tensor": ...
def decompress(
    data: bytes,
    *,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    transform: str | None = None,
    refiner: str | Refiner | None = None,
    refiner_options: Mapping[str, Any] | None = None,
    ignore_weights: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    as_tensor: bool = False,
) -> "Image.Image | torch.Tensor":
    """Decode a stream, rebuilding the chain from its own header.

    ``model`` names the transform's weights; they must be the ones the stream was made
    with (its fingerprint) unless ``ignore_weights``, which ``transform`` (another
    transform than the stream's) also needs.  ``refiner`` / ``refiner_options`` replace
    the stream's refiner.  An image over ``max_pixels`` is refused from the header
    (:class:`~latentcodec.errors.ImageTooLargeError`) before anything is decoded.
    """
    stream = read_stream(data, max_pixels)
    runtime = {"model": model, "device": device, "dtype": dtype}
    if transform is not None and transform != stream.stage("transform").name:
        if not ignore_weights:
            raise WeightsMismatchError(
                f"stream was made with transform {stream.stage('transform').name!r}; decoding with "
                f"{transform!r} needs --ignore-weights (ignore_weights=True)"
            )
        cls = registry.load("transform", transform)
        tstage = cls.from_config({k: v for k, v in runtime.items() if v is not None and k in cls.config_keys()})
    else:
        tstage = stage_from_record(stream.stage("transform"), **runtime)
    assert isinstance(tstage, Transform)
    tstage = shared(tstage)
    check_transform(stream, tstage, ignore_weights=ignore_weights)
    latent, quantizer = decode_latent(stream)
    options = dict(refiner_options or {})
    quiet = options.pop("quiet", None)  # a courtesy flag: ignored by refiners without progress bars
    chosen = resolve_refiner(stream, refiner, options=options, device=device, dtype=dtype, quiet=quiet)
    if not isinstance(refiner, Refiner):
        chosen = shared(chosen)
    return render(stream, latent, quantizer, tstage, chosen, as_tensor=as_tensor)
