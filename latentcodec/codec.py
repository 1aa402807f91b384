"""The :class:`Codec`: one stage of each kind, composed into compress / decompress.

Build one from a preset (:meth:`Codec.from_preset`), from stage names
(:meth:`Codec.from_stages`) or from a saved chain (:meth:`Codec.from_config`, the file
:meth:`Codec.save_config` writes).  ``quality`` (0..100) sets the quantizer's rate
parameter through :meth:`latentcodec.rate.RateParameter.value_for_quality`, the same way
for every chain.  ``compress`` returns the stream's bytes, or a :class:`CompressResult`
with ``return_result=True``.

Batches: :meth:`Codec.compress_many` runs the transform over images of equal size
together (``batch_size`` at a time; by default :data:`CUDA_BATCH_SIZE` on CUDA, 1 on the
CPU), but only where that gives bit-identical latents to one image at a time: the first
batch of each shape and size is checked against a single-image analysis, and where they
differ the images are analysed one at a time from then on.  So ``compress_many(images)
== [compress(im) for im in images]``, byte for byte, on every device.

Why one module of about 500 lines: it is one class, and about a fifth of it is the
``@overload`` stubs that give ``compress`` / ``decompress`` their precise return types;
option routing, stream decoding, the encoder search and ``info`` live elsewhere
(:mod:`.options`, :mod:`.decoding`, :mod:`.rdo`, :mod:`.info`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence, overload

import numpy as np

from . import __version__, bitstream, registry
from .bitstream import StageRecord, Stream
from .decoding import check_transform, decode_latent, read_stream, render, resolve_refiner
from .errors import StageConfigError, StageInputError, WeightsMismatchError
from .imageio import DEFAULT_MAX_PIXELS, ImageLike, atomic_write, to_tensor
from .options import MACHINE_OPTIONS, RUNTIME_KEYS, route_options
from .presets import DEFAULT_PRESET, get_preset
from .rate import rate_parameter
from .stages import STAGE_KINDS, EntropyCoder, Quantizer, Refiner, Stage, StageKind, Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from .rdo.efforts import SearchSettings

#: Images of equal size analysed together on CUDA by :meth:`Codec.compress_many` (and batch
#: compression).  On the CPU the default is 1: TAESD on 768x512 Kodak images took 7.5, 7.7,
#: 8.7 and 11.7 s per image at batch 1, 2, 4 and 8 (2 busy cores; larger activations
#: outgrow the caches), so batching only pays where a GPU has parallelism to spare.
CUDA_BATCH_SIZE = 8
#: The key :meth:`Codec.save_config` stores the library version under (ignored when read).
VERSION_KEY = "_latentcodec_version"


@dataclass(frozen=True)
class CompressResult:
    """One compressed image, for callers who want more than the bytes."""

    data: bytes
    width: int
    height: int
    #: Stage names in chain order: transform, quantizer, entropy coder, refiner.
    chain: tuple[str, ...]
    #: The quantizer's rate parameter (``step``, ``half_range``, ``colors``) and its value;
    #: None for a quantizer that declares none.
    parameter: str | None
    value: float | int | None

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        return 8.0 * len(self.data) / (self.width * self.height)

    def __bytes__(self) -> bytes:
        return self.data


#: The keyword arguments of :meth:`Codec.compress` that set the encoder search (:mod:`latentcodec.rdo`).
SEARCH_KEYS = ("effort", "lmbda", "distortion", "progress")


def search_settings(**search: Any) -> "SearchSettings":
    """:class:`~latentcodec.rdo.SearchSettings` from :data:`SEARCH_KEYS` keyword arguments (an unknown one is a TypeError)."""
    from .rdo.efforts import SearchSettings

    unknown = sorted(set(search) - set(SEARCH_KEYS))
    if unknown:
        raise TypeError(f"compress() got unexpected keyword arguments {', '.join(map(repr, unknown))}")
    return SearchSettings(**search)


def quality_option(quantizer: str, quality: float, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"quantizer.<rate parameter>": value}`` for ``quality`` 0..100 on quantizer ``quantizer``.

    Setting the rate parameter as well (``step=0.3`` with ``quality=50``) is ambiguous
    and refused.
    """
    p = rate_parameter(registry.load("quantizer", quantizer))
    clash = [k for k in options or {} if k in (p.name, f"quantizer.{p.name}", f"{quantizer}.{p.name}")]
    if clash:
        raise StageConfigError(f"give quality or {clash[0]}, not both: quality sets {quantizer!r}'s {p.name}")
    return {f"quantizer.{p.name}": p.value_for_quality(quality)}


def _read_config(config: Mapping[str, Any] | str | os.PathLike) -> Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    path = Path(config)
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        raise StageConfigError(f"no such chain config file: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StageConfigError(f"cannot read chain config {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise StageConfigError(f"chain config {path} must hold a JSON object")
    return loaded


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

        for stage, base in ((transform, Transform), (quantizer, Quantizer), (entropy_coder, EntropyCoder), (refiner, Refiner)):
            if stage is not None and not isinstance(stage, base):
                raise StageConfigError(f"{stage!r} is not a {base.__name__}")
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise StageConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        self.transform = transform
        self.quantizer = quantizer
        self.entropy_coder = entropy_coder
        self.refiner = refiner if refiner is not None else VAERefiner()
        self.max_pixels = max_pixels
        #: (shape, batch, threads) -> whether batched analysis matched single images there.
        self._batch_exact: dict[tuple[Any, ...], bool] = {}

    # --- construction -------------------------------------------------------------
    @classmethod
    def _build(
        cls,
        names: Mapping[StageKind, str],
        base: Mapping[StageKind, Mapping[str, Any]],
        options: Mapping[str, Any],
        *,
        quality: float | None,
        max_pixels: int,
    ) -> "Codec":
        """Stages ``names`` with configs ``base``, updated by ``options`` routed to the stage that takes them."""
        options = {k: v for k, v in options.items() if v is not None or k not in RUNTIME_KEYS}
        misplaced = [k for k in options if k in SEARCH_KEYS]
        if misplaced:
            raise StageConfigError(f"{misplaced[0]!r} is an encoder search setting, not a stage option: pass it to compress (codec.compress(image, {misplaced[0]}=...), --{misplaced[0]})")
        if quality is not None:
            options.update(quality_option(names["quantizer"], quality, options))
        routed = route_options(names, options)
        stages = {kind: registry.create(kind, names[kind], **{**base.get(kind, {}), **routed[kind]}) for kind in STAGE_KINDS}
        return cls(**stages, max_pixels=max_pixels)  # type: ignore[arg-type]

    @classmethod
    def from_stages(
        cls,
        names: Mapping[StageKind, str],
        options: Mapping[str, Any] | None = None,
        *,
        quality: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> "Codec":
        """A chain of registered stage names; ``options`` go to the stage that takes them."""
        return cls._build(names, {}, options or {}, quality=quality, max_pixels=max_pixels)

    @classmethod
    def from_preset(
        cls,
        name: str = DEFAULT_PRESET,
        *,
        transform: str | None = None,
        quantizer: str | None = None,
        entropy_coder: str | None = None,
        refiner: str | None = None,
        quality: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **options: Any,
    ) -> "Codec":
        """Build a named chain; stage names replace the preset's, options go to the stage that
        takes them, ``quality`` (0..100) sets the quantizer's rate parameter."""
        preset = get_preset(name)
        names = dict(preset.stages)
        for kind, override in (("transform", transform), ("quantizer", quantizer), ("entropy_coder", entropy_coder), ("refiner", refiner)):
            if override is not None:
                names[kind] = override  # type: ignore[index]
        model = options.get("model")
        if transform is None and isinstance(model, str) and names["transform"] in {"taesd", "sd-vae"}:
            from .transforms import transform_for_model

            names["transform"] = transform_for_model(model) or names["transform"]  # type: ignore[index]
        base = {kind: opts for kind, opts in preset.options.items() if names[kind] == preset.stages[kind]}
        return cls._build(names, base, options, quality=quality, max_pixels=max_pixels)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | str | os.PathLike,
        *,
        quality: float | None = None,
        max_pixels: int | None = None,
        **options: Any,
    ) -> "Codec":
        """Rebuild a chain from :meth:`get_config`'s dict or a file :meth:`save_config` wrote.

        ``options`` (``model=``, ``device=``, ``step=``, ``quantizer.step=``...) override the
        saved stage configs; ``quality`` and ``max_pixels`` as in :meth:`from_preset`.
        """
        config = _read_config(config)
        names: dict[StageKind, str] = {}
        base: dict[StageKind, Mapping[str, Any]] = {}
        for kind in STAGE_KINDS:
            spec = config.get(kind)
            if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("config", {}), Mapping):
                raise StageConfigError(f"chain config: {kind!r} must be {{\"name\": ..., \"config\": {{...}}}}, got {spec!r}")
            names[kind], base[kind] = spec["name"], spec.get("config", {})
        unknown = sorted(k for k in config if k not in STAGE_KINDS and k != "max_pixels" and not k.startswith("_"))
        if unknown:
            raise StageConfigError(f"chain config has unknown keys {', '.join(map(repr, unknown))}")
        limit = max_pixels if max_pixels is not None else config.get("max_pixels", DEFAULT_MAX_PIXELS)
        return cls._build(names, base, options, quality=quality, max_pixels=limit)

    def get_config(self, *, machine: bool = True) -> dict[str, Any]:
        """``{kind: {"name", "config"}, ..., "max_pixels"}``; :meth:`from_config` inverts it.

        ``machine=False`` leaves out :data:`~latentcodec.options.MACHINE_OPTIONS` (weight
        paths, devices, dtypes, priors): what a stream depends on stays, where this
        machine keeps its models goes.
        """
        out: dict[str, Any] = {}
        for s in self.stages:
            cfg = s.get_config()
            if not machine:
                cfg = {k: v for k, v in cfg.items() if k not in MACHINE_OPTIONS}
            out[s.kind] = {"name": s.name, "config": cfg}
        out["max_pixels"] = self.max_pixels
        return out

    def save_config(self, path: str | os.PathLike, *, machine: bool = False, force: bool = False) -> None:
        """Write the chain as JSON (diffusers-style), atomically; ``--config`` and
        :meth:`from_config` read it.  Machine options are left out unless ``machine``."""
        config = {VERSION_KEY: __version__, **self.get_config(machine=machine)}
        atomic_write(path, (json.dumps(config, indent=2, sort_keys=False, default=str) + "\n").encode(), force=force)

    @property
    def stages(self) -> tuple[Stage, ...]:
        return (self.transform, self.quantizer, self.entropy_coder, self.refiner)

    def to(self, device: "str | torch.device", dtype: str | None = None) -> "Codec":
        """Run every stage that has a ``device`` option on ``device`` (``dtype``: optional); returns self.

        A stage with a ``to(device)`` method is moved by it; any other is rebuilt from its
        config with the new device, so its weights load again (lazily) on first use.
        """
        device = str(device)
        for stage in self.stages:
            keys = stage.config_keys()
            if "device" not in keys:
                continue
            mover = getattr(stage, "to", None)
            if callable(mover):
                moved = mover(device)
                moved = moved if isinstance(moved, Stage) else stage
            else:
                extra = {"dtype": dtype} if dtype is not None and "dtype" in keys else {}
                moved = type(stage).from_config({**stage.get_config(), "device": device, **extra})
            setattr(self, stage.kind, moved)
        self._batch_exact.clear()
        return self

    # --- compression ----------------------------------------------------------------
    @overload
    def compress(self, image: ImageLike, *, return_result: Literal[False] = ..., **search: Any) -> bytes: ...
    @overload
    def compress(self, image: ImageLike, *, return_result: Literal[True], **search: Any) -> CompressResult: ...
    def compress(self, image: ImageLike, *, return_result: bool = False, **search: Any) -> bytes | CompressResult:
        """Image (path, PIL image, numpy array or float tensor in [0, 1]) -> stream bytes
        (a :class:`CompressResult` with ``return_result``).

        Encoder search (:mod:`latentcodec.rdo`; the stream and its decoding are unchanged):
        ``effort`` 0..3 or ``"max"`` (0, the default: the plain encoder, byte for byte),
        ``lmbda`` (weight of the distortion relative to the plain encode's, in
        ``lmbda * D / D0 + bpp``; default 0.1, 0.05 for ``mix``), ``distortion`` (``"mse"``,
        ``"ms-ssim"``, ``"mix"``), ``progress`` (a tqdm bar on stderr).
        """
        return self.compress_many([image], return_result=return_result, **search)[0]  # type: ignore[call-overload, no-any-return]

    @overload
    def compress_many(self, images: Sequence[ImageLike], *, batch_size: int | None = ..., return_result: Literal[False] = ..., **search: Any) -> list[bytes]: ...
    @overload
    def compress_many(self, images: Sequence[ImageLike], *, batch_size: int | None = ..., return_result: Literal[True], **search: Any) -> list[CompressResult]: ...
    def compress_many(
        self, images: Sequence[ImageLike], *, batch_size: int | None = None, return_result: bool = False, **search: Any
    ) -> list[bytes] | list[CompressResult]:
        """Compress several images, byte-identical to one :meth:`compress` each (see the module
        docstring); ``search`` as for :meth:`compress`."""
        settings = search_settings(**search)
        tensors = [self.load_image(im) for im in images]
        latents = self.analyse(tensors, batch_size=batch_size)
        return [
            self.compress_latent(z, (int(t.shape[-1]), int(t.shape[-2])), return_result=return_result, image=t, search=settings)  # type: ignore[call-overload]
            for t, z in zip(tensors, latents, strict=True)
        ]

    def load_image(self, image: ImageLike) -> "torch.Tensor":
        """An input as the float ``(1, 3, H, W)`` tensor the transform takes, size-checked first."""
        return to_tensor(image, self.max_pixels)

    def default_batch_size(self) -> int:
        """:data:`CUDA_BATCH_SIZE` when the transform runs on CUDA, else 1 (see :data:`CUDA_BATCH_SIZE`)."""
        from .runtime import resolve_device

        device = self.transform.get_config().get("device")
        try:
            return CUDA_BATCH_SIZE if isinstance(device, str) and resolve_device(device).type == "cuda" else 1
        except StageConfigError:
            return 1

    def analyse(self, images: Sequence["torch.Tensor"], *, batch_size: int | None = None) -> list[np.ndarray]:
        """Float32 latents ``(C, h, w)`` of ``(1, 3, H, W)`` images, batched over equal sizes
        only where that is bit-identical to analysing them one by one."""
        import torch

        if batch_size is None:
            batch_size = self.default_batch_size()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise StageConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(images):
            groups.setdefault(tuple(t.shape), []).append(i)

        def single(i: int) -> np.ndarray:
            return self.transform.analysis(images[i])[0].numpy()

        with torch.inference_mode():
            for shape, indices in groups.items():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    key = (shape, len(chunk), torch.get_num_threads())
                    if len(chunk) == 1 or self._batch_exact.get(key) is False:
                        for i in chunk:
                            out[i] = single(i)
                        continue
                    batch = self.transform.analysis(torch.cat([images[i] for i in chunk])).numpy()
                    if key not in self._batch_exact:
                        reference = single(chunk[0])
                        self._batch_exact[key] = bool(np.array_equal(reference, batch[0]))
                        if not self._batch_exact[key]:
                            out[chunk[0]] = reference
                            for i in chunk[1:]:
                                out[i] = single(i)
                            continue
                    for j, i in enumerate(chunk):
                        out[i] = batch[j]
        return out  # type: ignore[return-value]

    @overload
    def compress_latent(
        self, latent: np.ndarray, image_size: tuple[int, int], *, return_result: Literal[False] = ..., image: "torch.Tensor | None" = ..., search: "SearchSettings | None" = ...
    ) -> bytes: ...
    @overload
    def compress_latent(
        self, latent: np.ndarray, image_size: tuple[int, int], *, return_result: Literal[True], image: "torch.Tensor | None" = ..., search: "SearchSettings | None" = ...
    ) -> CompressResult: ...
    def compress_latent(
        self,
        latent: np.ndarray,
        image_size: tuple[int, int],
        *,
        return_result: bool = False,
        image: "torch.Tensor | None" = None,
        search: "SearchSettings | None" = None,
    ) -> bytes | CompressResult:
        """Quantize and code a latent ``(C, h, w)`` for an image of ``(width, height)``.

        With ``search`` (:func:`search_settings`) at an effort above 0, the latent is first
        searched through the decoder towards ``image`` (the ``(1, 3, H, W)`` tensor it is the
        analysis of; :func:`latentcodec.rdo.encode.search_latent`).
        """
        latent = np.asarray(latent, dtype=np.float32)
        width, height = image_size
        f = self.transform.downsampling_factor
        expected = (self.transform.latent_channels, -(-height // f), -(-width // f))
        if latent.shape != expected:
            raise StageInputError(f"latent shape {latent.shape} does not match {expected} for a {width}x{height} image")
        if search is not None and search.steps:
            from .rdo.encode import search_latent

            if image is None or tuple(image.shape[-2:]) != (height, width):
                raise StageInputError(f"effort {search.effort} searches through the decoder: pass the {width}x{height} image the latent came from")
            latent = search_latent(self, image, latent, search)
        q = self.quantizer.quantize(latent)
        if q.symbols.shape != self.quantizer.symbol_shape(latent.shape):
            raise StageInputError(f"quantizer {self.quantizer.name!r} changed the latent shape")
        payload = self.entropy_coder.encode(q.symbols)
        data = bitstream.write(
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
        if not return_result:
            return data
        parameter, value = self.rate()
        return CompressResult(data, width, height, tuple(s.name for s in self.stages), parameter, value)

    def rate(self) -> tuple[str | None, float | int | None]:
        """The quantizer's rate parameter and its current value, or ``(None, None)``."""
        p = getattr(self.quantizer, "rate_parameter", None)
        if p is None:
            return None, None
        return p.name, getattr(self.quantizer, p.name, None)

    # --- decompression ----------------------------------------------------------------
    @overload
    def decompress(
        self,
        data: bytes,
        *,
        refiner: str | Refiner | None = ...,
        refiner_options: Mapping[str, Any] | None = ...,
        ignore_weights: bool = ...,
        max_pixels: int | None = ...,
        as_tensor: Literal[False] = ...,
    ) -> "Image.Image": ...
    @overload
    def decompress(
        self,
        data: bytes,
        *,
        refiner: str | Refiner | None = ...,
        refiner_options: Mapping[str, Any] | None = ...,
        ignore_weights: bool = ...,
        max_pixels: int | None = ...,
        as_tensor: Literal[True],
    ) -> "torch.Tensor": ...
    def decompress(
        self,
        data: bytes,
        *,
        refiner: str | Refiner | None = None,
        refiner_options: Mapping[str, Any] | None = None,
        ignore_weights: bool = False,
        max_pixels: int | None = None,
        as_tensor: bool = False,
    ) -> "Image.Image | torch.Tensor":
        """Stream -> PIL image (or float tensor ``(1, 3, H, W)`` with ``as_tensor``).

        The quantizer and entropy coder are rebuilt from the stream's own chain; the
        transform is this codec's, and its weights must be the stream's unless
        ``ignore_weights``.  ``refiner`` / ``refiner_options`` override the stream's
        refiner.  Images over ``max_pixels`` (default: this codec's) are refused from the
        header, before decoding.
        """
        stream = read_stream(data, self.max_pixels if max_pixels is None else max_pixels)
        if stream.stage("transform").name != self.transform.name and not ignore_weights:
            raise WeightsMismatchError(
                f"stream was made with transform {stream.stage('transform').name!r}, this codec uses "
                f"{self.transform.name!r}; pass ignore_weights=True (--ignore-weights) to decode anyway"
            )
        check_transform(stream, self.transform, ignore_weights=ignore_weights)
        latent, quantizer = decode_latent(stream)
        options = dict(refiner_options or {})
        quiet = options.pop("quiet", None)  # a courtesy flag: ignored by refiners without progress bars
        chosen = resolve_refiner(stream, refiner, current=self.refiner, options=options, quiet=quiet)
        return render(stream, latent, quantizer, self.transform, chosen, as_tensor=as_tensor)
