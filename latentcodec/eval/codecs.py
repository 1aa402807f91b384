"""Every codec an evaluation compares, behind one interface.

* :class:`PillowCodec`: JPEG (``optimize``), WebP (``method=6``), AVIF, through Pillow;
* :class:`JXLToolCodec`: JPEG XL through ``cjxl``/``djxl`` (Debian ``libjxl-tools``), else
  :class:`JXLPillowCodec` through ``pillow-jxl-plugin`` (``latentcodec[metrics]``);
* :class:`PresetCodec`: one of our presets.  Its latent is computed once per image and
  only the quantizer/entropy coder (the rate parameter) vary between points.

A codec sweeps one rate parameter (``quality`` for classical codecs; for ours, the
quantizer's :class:`~latentcodec.rate.RateParameter`: ``step``, ``half_range`` or palette ``colors``); classical codecs can also search the largest file that fits a
byte budget (:meth:`ClassicalCodec.size_matched`), for size-matched comparisons.

>>> import numpy as np
>>> image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
>>> jpeg = make_codec("jpeg")
>>> [point] = jpeg.encode_points(image, [75])
>>> point.decoded.shape, point.num_bytes > 0
((32, 48, 3), True)
>>> small = jpeg.size_matched(image, point.num_bytes - 1)
>>> assert small is not None and small.num_bytes < point.num_bytes and small.param < 75
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
from PIL import Image

from ..errors import LatentCodecError, StageConfigError
from ..rate import RateParameter


@dataclass(frozen=True)
class Encoded:
    """One coded image: its rate parameter, its exact size and the decoded pixels."""

    param: Any
    num_bytes: int
    decoded: np.ndarray  # uint8 (H, W, 3)


class EvalCodec(ABC):
    """A codec with one rate parameter."""

    name: str
    param_name: ClassVar[str] = "quality"
    #: Default sweep, from low to high rate.
    default_points: tuple[Any, ...] = ()
    description: str = ""

    def unavailable_reason(self) -> str | None:
        """None when it runs here; otherwise what is missing and what to install."""
        return None

    @abstractmethod
    def encode_points(self, image: np.ndarray, params: Sequence[Any]) -> Iterator[Encoded]:
        """Code a uint8 ``(H, W, 3)`` image at each rate parameter, lazily."""


class ClassicalCodec(EvalCodec):
    """An image codec with an integer quality knob (higher: larger and better)."""

    quality_range: ClassVar[tuple[int, int]] = (0, 100)

    @abstractmethod
    def encode(self, image: Image.Image, quality: int) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray: ...

    def encode_points(self, image: np.ndarray, params: Sequence[Any]) -> Iterator[Encoded]:
        pil = Image.fromarray(image, "RGB")
        for q in params:
            data = self.encode(pil, int(q))
            yield Encoded(int(q), len(data), self.decode(data))

    def size_matched(self, image: np.ndarray, max_bytes: int) -> Encoded | None:
        """The highest quality whose file is at most ``max_bytes`` (None if none fits).

        Binary search assuming size grows with quality; only qualities that were actually
        encoded and fit are ever returned, so the budget holds even where size is not
        perfectly monotone.
        """
        pil = Image.fromarray(image, "RGB")
        lo, hi = self.quality_range
        best: tuple[int, bytes] | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            data = self.encode(pil, mid)
            if len(data) <= max_bytes:
                best = (mid, data)
                lo = mid + 1
            else:
                hi = mid - 1
        if best is None:
            return None
        q, data = best
        return Encoded(q, len(data), self.decode(data))


    def smallest_bytes(self, image: np.ndarray) -> int:
        """The file size at the lowest quality: about the smallest file this codec makes of ``image``."""
        return len(self.encode(Image.fromarray(image, "RGB"), self.quality_range[0]))


def _decode_with_pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


class PillowCodec(ClassicalCodec):
    """A Pillow format with a ``quality`` save option."""

    def __init__(self, name: str, fmt: str, feature: str, options: dict[str, Any], quality_range: tuple[int, int], points: tuple[int, ...], hint: str) -> None:
        self.name, self.format, self.feature, self.options = name, fmt, feature, options
        self.quality_range = quality_range  # type: ignore[misc]
        self.default_points = points
        self.hint = hint
        self.description = f"Pillow {fmt} " + " ".join(f"{k}={v}" for k, v in options.items())

    def unavailable_reason(self) -> str | None:
        from PIL import features

        try:
            ok = features.check(self.feature)
        except ValueError:
            ok = False
        return None if ok else f"this Pillow has no {self.format} support: {self.hint}"

    def encode(self, image: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format=self.format, quality=quality, **self.options)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return _decode_with_pillow(data)


def jxl_distance(quality: float) -> float:
    """libjxl's ``JxlEncoderDistanceFromQuality`` (cjxl 0.8+ ``-q``): quality 0..100 -> distance 25..0.

    cjxl 0.7 maps ``-q`` differently and rejects qualities below 5 (distance over 25), so
    the tool is given this distance with ``-d``: one quality means the same on every version.

    >>> jxl_distance(100), jxl_distance(90), jxl_distance(0)
    (0.0, 1.0, 25.0)
    """
    if quality >= 100:
        return 0.0
    if quality >= 30:
        return round(0.1 + (100 - quality) * 0.09, 6)
    return round(53.0 / 3000.0 * quality * quality - 23.0 / 20.0 * quality + 25.0, 6)


JXL_POINTS = (5, 20, 40, 60, 75, 90)


class JXLToolCodec(ClassicalCodec):
    """JPEG XL via the reference ``cjxl``/``djxl`` tools (``-d`` from the quality, effort 7)."""

    quality_range = (0, 100)

    def __init__(self, effort: int = 7) -> None:
        self.name = "jxl"
        self.effort = effort
        self.default_points = JXL_POINTS
        self.description = f"JPEG XL through cjxl/djxl (cjxl -d <libjxl distance for quality Q> -e {effort})"

    def unavailable_reason(self) -> str | None:
        missing = [t for t in ("cjxl", "djxl") if shutil.which(t) is None]
        if missing:
            return f"needs {' and '.join(missing)} on PATH: apt-get install libjxl-tools (Debian/Ubuntu) or brew install jpeg-xl"
        return None

    def _run(self, args: list[str]) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise LatentCodecError(f"{args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-200:]}")

    def encode(self, image: Image.Image, quality: int) -> bytes:
        with tempfile.TemporaryDirectory(prefix="lc-jxl-") as tmp:
            src, dst = Path(tmp) / "in.png", Path(tmp) / "out.jxl"
            image.save(src, compress_level=1)
            self._run(["cjxl", str(src), str(dst), "-d", f"{jxl_distance(quality):g}", "-e", str(self.effort)])
            return dst.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="lc-jxl-") as tmp:
            src, dst = Path(tmp) / "in.jxl", Path(tmp) / "out.png"
            src.write_bytes(data)
            self._run(["djxl", str(src), str(dst)])
            return _decode_with_pillow(dst.read_bytes())


class JXLPillowCodec(PillowCodec):
    """JPEG XL through the ``pillow-jxl-plugin`` package (its bundled libjxl), where cjxl is absent."""

    def __init__(self, effort: int = 7) -> None:
        hint = "pip install 'latentcodec[metrics]' (pillow-jxl-plugin) or apt-get install libjxl-tools (cjxl/djxl)"
        super().__init__("jxl", "JXL", "jxl", {"effort": effort}, (0, 100), JXL_POINTS, hint)
        self.description = f"JPEG XL through pillow-jxl-plugin (quality Q, effort {effort})"

    def unavailable_reason(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("pillow_jxl") else f"needs cjxl/djxl or the JPEG XL Pillow plugin: {self.hint}"

    def encode(self, image: Image.Image, quality: int) -> bytes:
        import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow

        return super().encode(image, quality)

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_jxl  # noqa: F401

        return super().decode(data)


def make_jxl() -> EvalCodec:
    """``jxl``: the cjxl/djxl tools where they exist, else the Pillow plugin (its description says which)."""
    tool = JXLToolCodec()
    return JXLPillowCodec() if tool.unavailable_reason() else tool


# --- our presets ----------------------------------------------------------------------
def rate_parameter_for(preset_name: str) -> RateParameter | None:
    """The rate parameter of a preset's quantizer (:mod:`latentcodec.rate`), if it has one."""
    from .. import registry
    from ..presets import get_preset

    quantizer = get_preset(preset_name).stages["quantizer"]
    found = getattr(registry.load("quantizer", quantizer), "rate_parameter", None)
    return found if isinstance(found, RateParameter) else None


#: Loaded transforms by (name, config), shared by every PresetCodec in this process.
_LOADED_TRANSFORMS: dict[tuple[str, str], Any] = {}


class PresetCodec(EvalCodec):
    """One of our presets.  The transform runs once per image; points vary the rest.

    Decoding goes through the real stream (``Codec.decompress``), so the rate is the
    exact file size and the quality is what a user would get.  The name is
    ``PRESET[@TRANSFORM][:KEY=VALUE,...]``: ``@`` replaces the preset's transform
    (``palette-ans@taesd``), the options go to ``Codec.from_preset`` like ``--option``
    (``taesd-hyperprior:entropy_coder.refine_z=0``), so one preset can be compared with
    itself under other encoder settings.  The rate parameter is set by the points instead.
    The encoder search settings (``effort``, ``lmbda``, ``distortion``: ``taesd-hyperprior:effort=3``)
    go to the search (:mod:`latentcodec.rdo`), not to the stages.
    """

    def __init__(self, spec: str, **runtime: Any) -> None:
        from ..options import parse_options

        self.name = spec
        base, _, options = spec.partition(":")
        self.preset, _, transform = base.partition("@")
        self.base_name = base  # what --points may name for every option set of this preset
        self.transform_override = transform or None
        self.options = parse_options(options.split(",")) if options else {}
        self.search_options = {k: self.options.pop(k) for k in ("effort", "lmbda", "distortion") if k in self.options}
        self.search: Any = None
        self.runtime = {k: v for k, v in runtime.items() if v is not None}
        self._base: Any = None
        self._variants: dict[Any, Any] = {}
        self.rate: RateParameter | None = None
        self.description = ""

    def unavailable_reason(self) -> str | None:
        from ..presets import PRESETS

        if self.preset not in PRESETS:
            return f"unknown preset (presets here: {', '.join(sorted(PRESETS))})"
        try:
            self.rate = rate_parameter_for(self.preset)
            fixed = [k for k in self.options if self.rate and k.rpartition(".")[2] == self.rate.name]
            if fixed:
                raise StageConfigError(f"option {fixed[0]!r} is the rate parameter: give its values with --points {self.name}=V1,V2,...")
            from ..codec import search_settings

            self.search = search_settings(**self.search_options)
            self.default_points = self.rate.sweep if self.rate else (None,)
            self.param_name = self.rate.name if self.rate else "default"  # type: ignore[misc]
            self._base = self._build(None)
            key = (self._base.transform.name, repr(sorted(self._base.transform.get_config().items())))
            if key in _LOADED_TRANSFORMS:  # one evaluation after another: load the weights once
                self._base.transform = _LOADED_TRANSFORMS[key]
            self._base.transform.fingerprint()  # loads the weights: fail here, not per image
            if self.search.steps:
                from ..rdo.encode import check_search

                check_search(self._base, self.search)  # e.g. a transform without gradients
            _LOADED_TRANSFORMS[key] = self._base.transform
        except LatentCodecError as exc:
            return f"cannot build it: {exc}"
        self.description = PRESETS[self.preset].description + (f" (transform {self.transform_override})" if self.transform_override else "")
        options = {**self.options, **self.search_options}
        if options:
            self.description += "; options " + ", ".join(f"{k}={v!r}" for k, v in options.items())
        return None

    def _build(self, value: Any) -> Any:
        from ..codec import Codec

        options = {**self.runtime, **self.options}
        if self.rate is not None and value is not None:
            options[self.rate.name] = value
        return Codec.from_preset(self.preset, transform=self.transform_override, **options)

    def variant(self, value: Any) -> Any:
        """A codec for one rate point that shares the base codec's (loaded) transform."""
        from ..codec import Codec

        if value not in self._variants:
            other = self._build(value)
            self._variants[value] = Codec(self._base.transform, other.quantizer, other.entropy_coder, other.refiner)
        return self._variants[value]

    def encode_points(self, image: np.ndarray, params: Sequence[Any]) -> Iterator[Encoded]:
        import torch

        from ..imageio import to_pil

        if self._base is None:
            reason = self.unavailable_reason()
            if reason:
                raise StageConfigError(f"{self.name}: {reason}")
        tensor = torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        latent = self._base.transform.analysis(tensor)[0].numpy()
        size = (image.shape[1], image.shape[0])
        for value in params:
            codec = self.variant(value)
            data = codec.compress_latent(latent, size, image=tensor, search=self.search)
            decoded = np.asarray(to_pil(codec.decompress(data, as_tensor=True)))
            yield Encoded(value, len(data), decoded)


def _pillow(name: str, fmt: str, feature: str, options: dict[str, Any], qrange: tuple[int, int], points: tuple[int, ...], hint: str) -> Callable[[], EvalCodec]:
    return lambda: PillowCodec(name, fmt, feature, options, qrange, points, hint)


CLASSICAL: dict[str, Callable[[], EvalCodec]] = {
    "jpeg": _pillow("jpeg", "JPEG", "jpg", {"optimize": True}, (1, 100), (5, 10, 20, 35, 50, 75, 90), "install Pillow wheels (pip install pillow), which bundle libjpeg"),
    "webp": _pillow("webp", "WEBP", "webp", {"method": 6}, (0, 100), (0, 10, 25, 50, 75, 90), "install Pillow wheels (pip install pillow), which bundle libwebp"),
    "avif": _pillow("avif", "AVIF", "avif", {}, (0, 100), (0, 15, 30, 50, 70, 85), "pip install 'pillow>=11.3' (its wheels bundle libavif) or the pillow-avif-plugin package"),
    "jxl": make_jxl,
}


def split_codec_list(text: str) -> list[str]:
    """``--codecs`` -> codec names; a ``KEY=VALUE`` item continues the options of the preset before it.

    >>> split_codec_list("taesd-hyperprior:entropy_coder.refine_z=0,step_search=2, jpeg,webp")
    ['taesd-hyperprior:entropy_coder.refine_z=0,step_search=2', 'jpeg', 'webp']
    """
    names: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if "=" in item and ":" not in item.partition("=")[0]:
            if not names or ":" not in names[-1]:
                raise StageConfigError(f"--codecs: {item!r} is an option but follows no PRESET:KEY=VALUE")
            names[-1] += "," + item
        else:
            names.append(item)
    return names


def make_codec(name: str, **runtime: Any) -> EvalCodec:
    """A classical codec by name, else our preset of that name (checked when used)."""
    factory = CLASSICAL.get(name)
    return factory() if factory else PresetCodec(name, **runtime)


def select_points(codec: EvalCodec, points: int | Sequence[Any] | None) -> list[Any]:
    """``None``: the default sweep; an int N: N points spread over it; a list: as given."""
    grid = list(codec.default_points)
    if points is None:
        return grid
    if isinstance(points, int):
        if points < 1:
            raise StageConfigError(f"--points must be at least 1, got {points}")
        if points >= len(grid):
            return grid
        idx = np.unique(np.round(np.linspace(0, len(grid) - 1, points)).astype(int))
        return [grid[i] for i in idx]
    return list(points)
