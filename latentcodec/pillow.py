"""``import latentcodec.pillow`` teaches Pillow the ``.lc`` format, as pillow-avif-plugin does for AVIF::

    import latentcodec.pillow
    from PIL import Image

    latentcodec.pillow.register(model="../shared/models/taesd")   # or LATENTCODEC_MODEL=...
    Image.open("photo.png").save("photo.lc", quality=50)
    image = Image.open("photo.lc")         # format "LC", mode "RGB", size from the header
    image.save("decoded.png")              # decodes here

(``tests/test_pillow.py`` runs exactly this on a Kodak image.)

Opening reads only the header (size, chain); the pixels are decoded on ``load()`` (or the
first access), by :func:`latentcodec.decompress`, which keeps the model loaded between
images.  ``image.info["latentcodec"]`` holds what ``latentcodec info --json`` prints.

Models and options, first found wins:

* decoding: :func:`register` ``(model=, device=, dtype=, refiner=, refiner_options=,
  max_pixels=, ignore_weights=)``; then the environment, ``LATENTCODEC_MODEL`` and
  ``LATENTCODEC_DEVICE``; then the stream's own defaults (a hub id: offline, an error
  that says to pass a model);
* saving: ``image.save("x.lc", quality=0..100, preset=..., model=..., device=...,
  dtype=..., max_pixels=..., options={"step": 0.4, ...})``; a missing ``model`` /
  ``device`` / ``dtype`` comes from :func:`register`, then the environment.

Importing this module imports Pillow and the container reader, not torch.
"""

from __future__ import annotations

import os
from typing import IO, Any

from PIL import Image, ImageFile

from . import bitstream
from .errors import LatentCodecError

FORMAT = "LC"
EXTENSION = ".lc"
MIME = "image/x-latentcodec"
#: Environment variables read when :func:`register` does not say.
ENV = {"model": "LATENTCODEC_MODEL", "device": "LATENTCODEC_DEVICE"}
_RUNTIME = ("model", "device", "dtype")
_SAVE_KEYS = ("quality", "preset", "max_pixels", *_RUNTIME)

_registered: dict[str, Any] = {}


def register(**options: Any) -> None:
    """Set the options for decoding (and the model, device and dtype for saving) ``.lc``
    files through Pillow; replaces earlier ones.  Keys as for :func:`latentcodec.decompress`."""
    from .api import decompress

    valid = set(decompress.__kwdefaults__ or {}) - {"as_tensor"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TypeError(f"latentcodec.pillow.register: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    _registered.clear()
    _registered.update({k: v for k, v in options.items() if v is not None})


def _runtime(key: str, given: Any = None) -> Any:
    if given is not None:
        return given
    if key in _registered:
        return _registered[key]
    env = ENV.get(key)
    return os.environ.get(env) or None if env else None


def _accept(prefix: bytes) -> bool:
    return prefix[: len(bitstream.MAGIC)] == bitstream.MAGIC


class LCImageFile(ImageFile.ImageFile):
    """A ``.lc`` stream as a Pillow image: RGB, its size from the header."""

    format = FORMAT
    format_description = "latentcodec stream"

    def _open(self) -> None:
        assert self.fp is not None
        data = self.fp.read()
        try:
            stream = bitstream.read(data)
        except LatentCodecError as exc:
            raise SyntaxError(f"not a readable latentcodec stream: {exc}") from exc
        from .info import describe

        self._size = (stream.width, stream.height)
        self._mode = "RGB"
        self.info["latentcodec"] = describe(data)
        box = (0, 0, stream.width, stream.height)
        tile = getattr(ImageFile, "_Tile", None)
        self.tile = [tile("latentcodec", box, 0, None) if tile is not None else ("latentcodec", box, 0, None)]  # type: ignore[list-item]


class LCDecoder(ImageFile.PyDecoder):
    """Decodes the whole stream at once with :func:`latentcodec.decompress`."""

    _pulls_fd = True

    def decode(self, buffer: bytes | Any) -> tuple[int, int]:
        from .api import decompress

        assert self.fd is not None
        options = {**_registered, **{k: _runtime(k) for k in _RUNTIME}}
        image = decompress(self.fd.read(), **{k: v for k, v in options.items() if v is not None})
        self.set_as_raw(image.tobytes())
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from .api import compress
    from .presets import DEFAULT_PRESET

    info = im.encoderinfo
    options = dict(info.get("options") or {})
    kwargs = {k: info.get(k) for k in _SAVE_KEYS if info.get(k) is not None}
    for key in _RUNTIME:
        value = _runtime(key, kwargs.get(key))
        if value is not None:
            kwargs[key] = value
    fp.write(compress(im, kwargs.pop("preset", DEFAULT_PRESET), **kwargs, **options))


Image.register_open(FORMAT, LCImageFile, _accept)
Image.register_decoder("latentcodec", LCDecoder)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, EXTENSION)
Image.register_mime(FORMAT, MIME)
