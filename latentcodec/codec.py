"""The :class:`Codec`: one stage of each kind, composed into compress / decompress."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from PIL import Image

from . import bitstream, registry
from .bitstream import StageRecord, Stream
from .decoding import check_transform, decode_latent, render, resolve_refiner, stage_from_record
from .errors import StageConfigError, StageInputError, WeightsMismatchError
from .imageio import DEFAULT_MAX_PIXELS, ImageLike, to_tensor
from .options import RUNTIME_KEYS, route_options
from .presets import DEFAULT_PRESET, get_preset
from .stages import STAGE_KINDS, EntropyCoder, Quantizer, Refiner, Stage, StageKind, Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch


class Codec:
    """A transform, a quantizer, an entropy coder and a refiner.

    >>> codec = Codec.from_preset("taesd-ans", model="../shared/models/taesd", device="cpu")
    >>> data = codec.compress("../shared/datasets/kodak/kodim23.png")
    >>> image = codec.decompress(data)
    >>> assert image.size == (768, 512) and len(data) < 16 * 1024
    """

    def __init__(
        self,
        transform: Transform,
        quantizer: Quantizer,
        entropy_coder: EntropyCoder,
        refiner: Refiner | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        from .refiners.vae import VAERefiner

        for stage, base in ((transform, Transform), (quantizer, Quantizer), (entropy_coder, EntropyCoder)):
            if not isinstance(stage, base):
                raise StageConfigError(f"{stage!r} is not a {base.__name__}")
        self.transform = transform
        self.quantizer = quantizer
        self.entropy_coder = entropy_coder
        self.refiner = refiner if refiner is not None else VAERefiner()
        self.max_pixels = max_pixels

    # --- construction -------------------------------------------------------------
    @classmethod
    def from_stages(
        cls,
        names: Mapping[StageKind, str],
        options: Mapping[str, Any] | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> "Codec":
        routed = route_options(names, options or {})
        stages = {kind: registry.create(kind, names[kind], **routed[kind]) for kind in STAGE_KINDS}
        return cls(**stages, max_pixels=max_pixels)  # type: ignore[arg-type]

    @classmethod
    def from_preset(
        cls,
        name: str = DEFAULT_PRESET,
        *,
        transform: str | None = None,
        quantizer: str | None = None,
        entropy_coder: str | None = None,
        refiner: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **options: Any,
    ) -> "Codec":
        """Build a named chain; stage names replace the preset's, options go to the stage that takes them."""
        preset = get_preset(name)
        names = dict(preset.stages)
        for kind, override in (
            ("transform", transform),
            ("quantizer", quantizer),
            ("entropy_coder", entropy_coder),
            ("refiner", refiner),
        ):
            if override is not None:
                names[kind] = override  # type: ignore[index]
        model = options.get("model")
        if transform is None and isinstance(model, str) and names["transform"] in {"taesd", "sd-vae"}:
            from .transforms import transform_for_model

            names["transform"] = transform_for_model(model) or names["transform"]  # type: ignore[index]
        merged: dict[str, Any] = {}
        for kind, opts in preset.options.items():
            if names[kind] == preset.stages[kind]:
                merged.update({f"{kind}.{k}": v for k, v in opts.items()})
        merged.update({k: v for k, v in options.items() if v is not None or k not in RUNTIME_KEYS})
        return cls.from_stages(names, merged, max_pixels=max_pixels)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Codec":
        stages = {}
        for kind in STAGE_KINDS:
            spec = config[kind]
            stages[kind] = registry.create(kind, spec["name"], **spec.get("config", {}))
        return cls(**stages)  # type: ignore[arg-type]

    def get_config(self) -> dict[str, Any]:
        return {s.kind: {"name": s.name, "config": s.get_config()} for s in self.stages}

    @property
    def stages(self) -> tuple[Stage, ...]:
        return (self.transform, self.quantizer, self.entropy_coder, self.refiner)

    # --- compression ----------------------------------------------------------------
    def compress(self, image: ImageLike) -> bytes:
        """Image (path, PIL image or float tensor in [0, 1]) -> stream bytes."""
        return self.compress_many([image])[0]

    def compress_many(self, images: Sequence[ImageLike]) -> list[bytes]:
        """Compress several images, batching the transform over images of equal size."""
        import torch

        tensors = [to_tensor(im, self.max_pixels) for im in images]
        latents: list[torch.Tensor | None] = [None] * len(tensors)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(tensors):
            by_size.setdefault(tuple(t.shape[-2:]), []).append(i)
        for indices in by_size.values():
            batch = self.transform.analysis(torch.cat([tensors[i] for i in indices]))
            for j, i in enumerate(indices):
                latents[i] = batch[j]
        out = []
        for t, z in zip(tensors, latents):
            assert z is not None
            out.append(self.compress_latent(z.numpy(), (int(t.shape[-1]), int(t.shape[-2]))))
        return out

    def compress_latent(self, latent: np.ndarray, image_size: tuple[int, int]) -> bytes:
        """Quantize and code a latent ``(C, h, w)`` for an image of ``(width, height)``."""
        latent = np.asarray(latent, dtype=np.float32)
        width, height = image_size
        f = self.transform.downsampling_factor
        expected = (self.transform.latent_channels, -(-height // f), -(-width // f))
        if latent.shape != expected:
            raise StageInputError(f"latent shape {latent.shape} does not match {expected} for a {width}x{height} image")
        q = self.quantizer.quantize(latent)
        if q.symbols.shape != self.quantizer.symbol_shape(latent.shape):
            raise StageInputError(f"quantizer {self.quantizer.name!r} changed the latent shape")
        payload = self.entropy_coder.encode(q.symbols)
        return bitstream.write(
            Stream(
                width=width,
                height=height,
                latent_channels=expected[0],
                downsampling_factor=f,
                chain=tuple(StageRecord(s.kind, s.name, s.version, s.wire_params()) for s in self.stages),
                fingerprint=self.transform.fingerprint(),
                side_info=q.side_info,
                payload=payload,
            )
        )

    # --- decompression ----------------------------------------------------------------
    def decompress(
        self,
        data: bytes,
        *,
        refiner: str | Refiner | None = None,
        force: bool = False,
        as_tensor: bool = False,
    ) -> Image.Image | torch.Tensor:
        """Stream -> PIL image (or float tensor ``(1, 3, H, W)`` with ``as_tensor``).

        The quantizer and entropy coder are rebuilt from the stream's own chain; the
        transform is this codec's (weights are checked against the stream's fingerprint
        unless ``force``).  ``refiner`` overrides the stream's refiner.
        """
        stream = bitstream.read(data)
        if stream.stage("transform").name != self.transform.name and not force:
            raise WeightsMismatchError(
                f"stream was made with transform {stream.stage('transform').name!r}, this codec uses "
                f"{self.transform.name!r}; pass force=True (--force) to decode anyway"
            )
        latent, quantizer = decode_latent(stream)
        check_transform(stream, self.transform, force=force)
        chosen = resolve_refiner(stream, refiner, current=self.refiner)
        return render(stream, latent, quantizer, self.transform, chosen, as_tensor=as_tensor)


def decompress(
    data: bytes,
    *,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    transform: str | None = None,
    refiner: str | Refiner | None = None,
    refiner_options: Mapping[str, Any] | None = None,
    force: bool = False,
    as_tensor: bool = False,
) -> Image.Image | torch.Tensor:
    """Decode a stream, rebuilding the chain from its own header.

    ``transform`` replaces the stream's transform (its weights differ, so it needs
    ``force``); ``refiner`` replaces its refiner.
    """
    stream = bitstream.read(data)
    latent, quantizer = decode_latent(stream)
    runtime = {"model": model, "device": device, "dtype": dtype}
    if transform is not None and transform != stream.stage("transform").name:
        if not force:
            raise WeightsMismatchError(
                f"stream was made with transform {stream.stage('transform').name!r}; decoding with "
                f"{transform!r} needs --force"
            )
        cls = registry.load("transform", transform)
        tstage = cls.from_config({k: v for k, v in runtime.items() if v is not None and k in cls.config_keys()})
    else:
        tstage = stage_from_record(stream.stage("transform"), **runtime)
    assert isinstance(tstage, Transform)
    check_transform(stream, tstage, force=force)
    options = dict(refiner_options or {})
    quiet = options.pop("quiet", None)  # a courtesy flag: ignored by refiners without progress bars
    chosen = resolve_refiner(stream, refiner, options=options, device=device, dtype=dtype, quiet=quiet)
    return render(stream, latent, quantizer, tstage, chosen, as_tensor=as_tensor)


def compress(image: ImageLike, preset: str = DEFAULT_PRESET, **options: Any) -> bytes:
    """One-call compression with a preset; see :meth:`Codec.from_preset` for options."""
    return Codec.from_preset(preset, **options).compress(image)
