"""Every codec an evaluation compares, behind one interface.

* :class:`PillowCodec`: JPEG (``optimize``), WebP (``method=6``), AVIF, through Pillow;
* :class:`JXLToolCodec`: JPEG XL through ``cjxl``/``djxl`` (Debian ``libjxl-tools``);
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


class JXLToolCodec(ClassicalCodec):
    """JPEG XL via the reference ``cjxl``/``djxl`` tools (``-q`` quality, effort 7)."""

    quality_range = (1, 100)

    def __init__(self, effort: int = 7) -> None:
        self.name = "jxl"
        self.effort = effort
        self.default_points = (5, 20, 40, 60, 75, 90)
        self.description = f"JPEG XL (cjxl -q Q -e {effort})"

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
            self._run(["cjxl", str(src), str(dst), "-q", str(quality), "-e", str(self.effort)])
            return dst.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="lc-jxl-") as tmp:
            src, dst = Path(tmp) / "in.jxl", Path(tmp) / "out.png"
            src.write_bytes(data)
            self._run(["djxl", str(src), str(dst)])
            return _decode_with_pillow(dst.read_bytes())


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
    exact file size and the quality is what a user would get.  ``PRESET@TRANSFORM``
    replaces the preset's transform (``palette-ans@taesd``).
    """

    def __init__(self, preset: str, **runtime: Any) -> None:
        self.name = preset
        self.preset, _, transform = preset.partition("@")
        self.transform_override = transform or None
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
            self.default_points = self.rate.sweep if self.rate else (None,)
            self.param_name = self.rate.name if self.rate else "default"  # type: ignore[misc]
            self._base = self._build(None)
            key = (self._base.transform.name, repr(sorted(self._base.transform.get_config().items())))
            if key in _LOADED_TRANSFORMS:  # one evaluation after another: load the weights once
                self._base.transform = _LOADED_TRANSFORMS[key]
            self._base.transform.fingerprint()  # loads the weights: fail here, not per image
            _LOADED_TRANSFORMS[key] = self._base.transform
        except LatentCodecError as exc:
            return f"cannot build it: {exc}"
        self.description = PRESETS[self.preset].description + (f" (transform {self.transform_override})" if self.transform_override else "")
        return None

    def _build(self, value: Any) -> Any:
        from ..codec import Codec

        options = dict(self.runtime)
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
            data = codec.compress_latent(latent, size)
            decoded = np.asarray(to_pil(codec.decompress(data, as_tensor=True)))
            yield Encoded(value, len(data), decoded)


def _pillow(name: str, fmt: str, feature: str, options: dict[str, Any], qrange: tuple[int, int], points: tuple[int, ...], hint: str) -> Callable[[], EvalCodec]:
    return lambda: PillowCodec(name, fmt, feature, options, qrange, points, hint)


CLASSICAL: dict[str, Callable[[], EvalCodec]] = {
    "jpeg": _pillow("jpeg", "JPEG", "jpg", {"optimize": True}, (1, 100), (5, 10, 20, 35, 50, 75, 90), "install Pillow wheels (pip install pillow), which bundle libjpeg"),
    "webp": _pillow("webp", "WEBP", "webp", {"method": 6}, (0, 100), (0, 10, 25, 50, 75, 90), "install Pillow wheels (pip install pillow), which bundle libwebp"),
    "avif": _pillow("avif", "AVIF", "avif", {}, (0, 100), (0, 15, 30, 50, 70, 85), "pip install 'pillow>=11.3' (its wheels bundle libavif) or the pillow-avif-plugin package"),
    "jxl": JXLToolCodec,
}


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
