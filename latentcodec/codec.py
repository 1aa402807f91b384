"""The :class:`Codec`: one stage of each kind, composed into compress / decompress."""

from __future__ import annotations

import ast
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from . import bitstream, registry
from .bitstream import StageRecord, Stream
from .errors import (
    CorruptStreamError,
    StageConfigError,
    StageInputError,
    UnsupportedVersionError,
    WeightsMismatchError,
)
from .imageio import DEFAULT_MAX_PIXELS, ImageLike, to_pil, to_tensor
from .presets import DEFAULT_PRESET, get_preset
from .stages import STAGE_KINDS, EntropyCoder, Quantizer, RefineContext, Refiner, Stage, StageKind, Transform

RUNTIME_KEYS = ("model", "device", "dtype")


def parse_option_value(text: str) -> Any:
    """``--option`` values: Python literals (numbers, booleans, None, lists) or strings."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["a=1", "quantizer.step=0.3"]`` -> ``{"a": 1, "quantizer.step": 0.3}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StageConfigError(f"option {pair!r} is not of the form key=value")
        out[key.strip()] = parse_option_value(value)
    return out


def _route_options(
    names: Mapping[StageKind, str], options: Mapping[str, Any]
) -> dict[StageKind, dict[str, Any]]:
    """Send each option to the stage that accepts it (``kind.key`` or ``name.key`` is explicit)."""
    classes = {kind: registry.load(kind, name) for kind, name in names.items()}
    routed: dict[StageKind, dict[str, Any]] = {kind: {} for kind in names}
    for key, value in options.items():
        prefix, dot, bare = key.rpartition(".")
        if dot:
            targets = [k for k in names if prefix in (k, names[k], k.replace("_", "-"))]
            if not targets:
                raise StageConfigError(f"option {key!r}: no stage {prefix!r} in this chain ({', '.join(names.values())})")
        else:
            bare = key
            targets = [k for k, cls in classes.items() if bare in cls.config_keys()]
            if len(targets) > 1 and bare in RUNTIME_KEYS:
                pass  # device/dtype apply to every stage that runs a model
            elif len(targets) > 1:
                raise StageConfigError(
                    f"option {key!r} is ambiguous between {', '.join(names[t] for t in targets)}; "
                    f"write it as STAGE.{key}"
                )
        for kind in targets:
            if bare not in classes[kind].config_keys():
                raise StageConfigError(
                    f"{kind.replace('_', ' ')} {names[kind]!r} has no option {bare!r}; "
                    f"valid: {', '.join(classes[kind].config_keys()) or '(none)'}"
                )
            routed[kind][bare] = value
        if not targets:
            valid = "; ".join(f"{names[k]}: {', '.join(c.config_keys()) or '-'}" for k, c in classes.items())
            raise StageConfigError(f"no stage in this chain takes option {key!r} (valid: {valid})")
    return routed


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
        routed = _route_options(names, options or {})
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


# --- stream-driven helpers -----------------------------------------------------------
def stage_from_record(record: StageRecord, **runtime: Any) -> Stage:
    """Instantiate the stage a stream names, with its wire params and runtime options."""
    cls = registry.load(record.kind, record.name)
    supported = getattr(cls, "supported_versions", (cls.version,))
    if record.version not in supported:
        raise UnsupportedVersionError(
            f"stream uses {record.kind.replace('_', ' ')} {record.name!r} version {record.version}; "
            f"the installed one reads version(s) {', '.join(map(str, supported))}"
        )
    config = cls.config_from_wire(record.params)
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
) -> Image.Image | torch.Tensor:
    """Refine a dequantized latent into the stream's image, cropped to its size."""
    context = RefineContext(image_size=(stream.width, stream.height), quantizer=quantizer, side_info=stream.side_info)
    image = refiner.refine(torch.from_numpy(latent)[None], transform, context)[..., : stream.height, : stream.width]
    return image if as_tensor else to_pil(image)


def check_transform(stream: Stream, transform: Transform, *, force: bool) -> None:
    """Refuse a transform whose latent layout or weights differ from the stream's."""
    if (transform.latent_channels, transform.downsampling_factor) != (stream.latent_channels, stream.downsampling_factor):
        raise WeightsMismatchError(
            f"transform {transform.name!r} has {transform.latent_channels} latent channels at 1/{transform.downsampling_factor}; "
            f"the stream has {stream.latent_channels} at 1/{stream.downsampling_factor}"
        )
    if force:
        return
    if transform.fingerprint() != stream.fingerprint:
        raise WeightsMismatchError(
            f"stream was encoded with transform weights {stream.fingerprint.hex()}, but the loaded "
            f"{transform.name!r} model ({getattr(transform, 'model', '?')}) has {transform.fingerprint().hex()}; "
            "pass the same --model, or --force to decode anyway"
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


def describe(data: bytes) -> dict[str, Any]:
    """What ``latentcodec info`` prints: chain, sizes, rate and overhead."""
    stream = bitstream.read(data)
    chain = []
    for record in stream.chain:
        item: dict[str, Any] = {"kind": record.kind, "name": record.name, "version": record.version}
        try:
            cls = registry.load(record.kind, record.name)
            item["params"] = cls.config_from_wire(record.params)
        except Exception:  # noqa: BLE001 - info works even without the plugin installed
            item["params_hex"] = record.params.hex()
        chain.append(item)
    pixels = stream.width * stream.height
    return {
        "format_version": stream.version,
        "width": stream.width,
        "height": stream.height,
        "latent_shape": list(stream.latent_shape),
        "chain": chain,
        "fingerprint": stream.fingerprint.hex(),
        "total_bytes": stream.total_bytes,
        "side_info_bytes": len(stream.side_info),
        "payload_bytes": len(stream.payload),
        "overhead_bytes": stream.overhead_bytes,
        "bpp": 8.0 * stream.total_bytes / pixels,
    }
