"""Decoding driven by a stream's own header: rebuild each stage it names, then decode.

:func:`read_stream` parses the container and refuses an image larger than the decoder's
pixel limit from the header alone, before any symbol is decoded or any buffer allocated
(a 36-byte stream may claim 16384x16384).  No model is needed to reach the symbols and
the dequantized latent (:func:`decode_symbols`, :func:`decode_latent`); :func:`render`
runs the refiner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import bitstream, registry
from .bitstream import StageRecord, Stream
from .errors import CorruptStreamError, StageConfigError, UnsupportedVersionError, WeightsMismatchError
from .imageio.core import check_pixels
from .stages import EntropyCoder, Quantizer, RefineContext, Refiner, Stage, Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


def read_stream(data: bytes, max_pixels: int) -> Stream:
    """Parse ``data`` and check the image size it claims against ``max_pixels``
    (:class:`~latentcodec.errors.ImageTooLargeError`), before anything is decoded."""
    stream = bitstream.read(data)
    check_pixels(stream.width, stream.height, max_pixels)
    return stream


def stage_from_record(record: StageRecord, **runtime: Any) -> Stage:
    """Instantiate the stage a stream names, with its wire params and runtime options."""
    cls = registry.load(record.kind, record.name)
    supported = getattr(cls, "supported_versions", None) or (cls.version,)
    if record.version not in supported:
        raise UnsupportedVersionError(
            f"stream uses {record.kind.replace('_', ' ')} {record.name!r} version {record.version}; "
            f"the installed one reads version(s) {', '.join(map(str, supported))}"
        )
    config = cls.config_from_record(record.params, record.version)
    keys = cls.config_keys()
    config.update({k: v for k, v in runtime.items() if k in keys and v is not None})
    return cls.from_config(config)


def decode_symbols(stream: Stream) -> tuple[np.ndarray, Quantizer]:
    """Entropy-decode a parsed stream's symbols; no model needed."""
    quantizer = stage_from_record(stream.stage("quantizer"))
    coder = stage_from_record(stream.stage("entropy_coder"))
    assert isinstance(quantizer, Quantizer) and isinstance(coder, EntropyCoder)
    shape = tuple(quantizer.symbol_shape(stream.latent_shape))
    symbols = coder.decode(stream.payload, shape)
    if tuple(symbols.shape) != shape:
        raise CorruptStreamError("entropy coder returned symbols of the wrong shape")
    return symbols, quantizer


def decode_latent(stream: Stream) -> tuple[np.ndarray, Quantizer]:
    symbols, quantizer = decode_symbols(stream)
    latent = quantizer.dequantize(symbols, stream.side_info)
    return np.asarray(latent, dtype=np.float32), quantizer


def render(
    stream: Stream,
    latent: np.ndarray,
    quantizer: Quantizer,
    transform: Transform,
    refiner: Refiner,
    *,
    as_tensor: bool,
) -> "Image.Image | torch.Tensor":
    """Refine a dequantized latent into the stream's image, cropped to its size."""
    import torch

    from .imageio import to_pil

    context = RefineContext(image_size=(stream.width, stream.height), quantizer=quantizer, side_info=stream.side_info)
    with torch.inference_mode():  # decoding never needs gradients
        image = refiner.refine(torch.from_numpy(latent)[None], transform, context)[..., : stream.height, : stream.width]
    return image if as_tensor else to_pil(image)


def check_transform(stream: Stream, transform: Transform, *, ignore_weights: bool) -> None:
    """Refuse a transform whose latent layout or weights differ from the stream's."""
    if (transform.latent_channels, transform.downsampling_factor) != (stream.latent_channels, stream.downsampling_factor):
        raise WeightsMismatchError(
            f"transform {transform.name!r} has {transform.latent_channels} latent channels at 1/{transform.downsampling_factor}; "
            f"the stream has {stream.latent_channels} at 1/{stream.downsampling_factor}"
        )
    if ignore_weights:
        return
    if transform.fingerprint() != stream.fingerprint:
        raise WeightsMismatchError(
            f"stream was encoded with transform weights {stream.fingerprint.hex()}, but the loaded "
            f"{transform.name!r} model ({getattr(transform, 'model', '?')}) has {transform.fingerprint().hex()}; "
            "pass the same --model, or --ignore-weights to decode anyway"
        )


def resolve_refiner(
    stream: Stream,
    refiner: str | Refiner | None,
    *,
    current: Refiner | None = None,
    options: Mapping[str, Any] | None = None,
    **runtime: Any,
) -> Refiner:
    """The refiner to decode with: ``refiner`` if given, else the stream's own.

    ``options`` are the user's explicit refiner options and must all be valid for the
    chosen refiner; ``runtime`` ones (device, dtype, quiet) apply where they fit.  The
    stream's wire params (e.g. a seed) are honoured when it names the same refiner.
    """
    options = dict(options or {})
    if isinstance(refiner, Refiner):
        chosen: Refiner = refiner
    else:
        name = refiner if isinstance(refiner, str) else stream.stage("refiner").name
        cls = registry.load("refiner", name)
        unknown = sorted(set(options) - set(cls.config_keys()))
        if unknown:
            raise StageConfigError(
                f"refiner {name!r} has no option {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(cls.config_keys()) or '(none)'}"
            )
        if refiner is None and current is not None and current.name == name and not options:
            chosen = current
        elif stream.stage("refiner").name == name:
            chosen = stage_from_record(stream.stage("refiner"), **runtime, **options)  # type: ignore[assignment]
        else:
            keys = cls.config_keys()
            config = {k: v for k, v in runtime.items() if k in keys and v is not None}
            chosen = cls.from_config({**config, **options})  # type: ignore[assignment]
    transform_space = registry.load("transform", stream.stage("transform").name).latent_space if stream.stage("transform").name in registry.entries("transform") else None
    if chosen.latent_spaces is not None and transform_space is not None and transform_space not in chosen.latent_spaces:
        raise StageConfigError(
            f"refiner {chosen.name!r} works on {', '.join(sorted(chosen.latent_spaces))} latents, "
            f"not on {transform_space!r} latents from {stream.stage('transform').name!r}"
        )
    return chosen
