"""Reference decoder for latentcodec streams, written from ``bitstream/SPEC.md`` alone.

Pure Python and numpy: no constriction, no torch, no import of ``latentcodec``.  It
parses and CRC-checks the container (SPEC 2), reads the four stage records, and decodes
the symbols and the dequantized latent of the ``uniform`` and ``uint8`` quantizers
(SPEC 5.1, 5.2) coded with the ``ans`` or ``zlib`` entropy coders (SPEC 6.1, 6.2).  The
rANS decoder and the 24-bit integer models it uses (SPEC 3.2, 3.3) are implemented here
from their integer definitions.  Section numbers in comments refer to SPEC.md.

Usage::

    python bitstream/reference/decode.py FILE [FILE ...] [--max-pixels N]

prints, per file, the chain, the symbol shape and the SHA-256 of the symbols as int32
little-endian in C order (the ``symbols_sha256`` of ``bitstream/vectors/vectors.json``),
and the SHA-256 of the dequantized float32 latent.

From Python: ``decode(data) -> Decoded`` (``.stream``, ``.symbols``, ``.latent``).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import math
import re
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# --- errors (SPEC 2.5) -------------------------------------------------------------


class StreamError(Exception):
    """Base of everything this decoder raises on purpose."""


class BadMagicError(StreamError):
    pass


class UnsupportedVersionError(StreamError):
    """Another format version, or a stage version this decoder does not know."""


class CorruptStreamError(StreamError):
    pass


class TruncatedStreamError(CorruptStreamError):
    pass


class LimitExceededError(CorruptStreamError):
    pass


class UnknownStageError(StreamError):
    pass


class ImageTooLargeError(StreamError):
    """The image is larger than the caller's decode-side pixel limit (SPEC 2.6)."""


class RefusedStreamError(StreamError):
    """A well-formed stream this decoder refuses (e.g. params outside the allowed range)."""


class NotImplementedStageError(StreamError):
    """A valid stage this reference decoder does not implement."""


# --- container constants (SPEC 2) ----------------------------------------------------

MAGIC = b"\x8cLC"
FORMAT_VERSION = 1
MIN_STREAM_BYTES = 24
MAX_SIDE = 65535
MAX_PIXELS_FORMAT = 1 << 28
DEFAULT_MAX_PIXELS = 4096 * 4096  # SPEC 2.6: the decode-side default, 16 MP
MAX_PARAM_BYTES = 4096
MAX_NAME_BYTES = 32
MAX_VARINT_BYTES = 5
NAME_RE = re.compile(rb"^[a-z0-9][a-z0-9._-]*$")
KINDS = ("transform", "quantizer", "entropy_coder", "refiner")

#: SPEC 2.3.  Entropy coder id 6 is retired: it is deliberately absent (unknown).
WIRE_IDS: dict[str, dict[int, str]] = {
    "transform": {1: "taesd", 2: "sd-vae", 64: "onnx-vaelight"},
    "quantizer": {1: "uint8", 2: "uniform", 3: "palette"},
    "entropy_coder": {1: "ans", 2: "zlib", 3: "ans-factorized", 4: "ans-hyperprior", 5: "ans-context", 7: "ans-binned"},
    "refiner": {1: "vae", 2: "unet-denoise", 3: "ddim-inversion", 4: "controlnet-canny"},
}
#: Every built-in stage is at version 1 (SPEC 2.2); the learned coders also define 2.
STAGE_VERSIONS: dict[str, tuple[int, ...]] = {
    "taesd": (1,), "sd-vae": (1,),
    "uniform": (1,), "uint8": (1,), "palette": (1,),
    "ans": (1,), "zlib": (1,), "ans-binned": (1,),
    "ans-factorized": (1, 2), "ans-hyperprior": (1, 2), "ans-context": (1, 2),
    "vae": (1,), "unet-denoise": (1,), "ddim-inversion": (1,), "controlnet-canny": (1,),
}


class Cursor:
    """Bounds-checked reader over ``data[pos:end]``; any overrun is a truncated stream."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise TruncatedStreamError(f"stream ends inside {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str, limit: int) -> int:
        """SPEC 1: unsigned LEB128, at most 5 bytes, then compared to the field's limit."""
        value = 0
        for k in range(MAX_VARINT_BYTES):
            byte = self.u8(what)
            value |= (byte & 0x7F) << (7 * k)
            if not byte & 0x80:
                if value > limit:
                    raise LimitExceededError(f"{what} is {value}, over its limit {limit}")
                return value
        raise CorruptStreamError(f"{what} is a varint of more than {MAX_VARINT_BYTES} bytes")


def unzigzag(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


# --- the container (SPEC 2.1, 2.2, 2.4) ------------------------------------------------


@dataclass(frozen=True)
class StageRecord:
    kind: str
    name: str
    version: int
    params: bytes


@dataclass(frozen=True)
class Stream:
    width: int
    height: int
    channels: int
    factor: int
    chain: tuple[StageRecord, ...]
    fingerprint: bytes
    side_info: bytes
    payload: bytes

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        f = self.factor
        return (self.channels, -(-self.height // f), -(-self.width // f))

    def stage(self, kind: str) -> StageRecord:
        return self.chain[KINDS.index(kind)]


def _stage_record(r: Cursor, kind: str) -> StageRecord:
    wire_id = r.varint(f"{kind} id", 127)
    if wire_id == 0:
        n = r.u8(f"{kind} name length")
        if not 1 <= n <= MAX_NAME_BYTES:
            raise CorruptStreamError(f"{kind} name length {n} outside 1..{MAX_NAME_BYTES}")
        raw = r.take(n, f"{kind} name")
        if not NAME_RE.match(raw):
            raise CorruptStreamError(f"{kind} name {raw!r} is not a valid stage name")
        name = raw.decode("ascii")
    else:
        if wire_id not in WIRE_IDS[kind]:
            raise UnknownStageError(f"{kind} wire id {wire_id} is not registered")
        name = WIRE_IDS[kind][wire_id]
    vp = r.u8(f"{kind} version/params length")
    version, n = vp >> 4, vp & 0x0F
    if n == 15:
        n += r.varint(f"{kind} params length", MAX_PARAM_BYTES - 15)
    return StageRecord(kind, name, version, r.take(n, f"{kind} params"))


def read_stream(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Stream:
    """SPEC 2.4, step by step, in the order the spec fixes."""
    data = bytes(data)
    if len(data) < 3 or data[:3] != MAGIC:
        if len(data) < 3 and MAGIC.startswith(data):
            raise TruncatedStreamError("stream is shorter than the magic number")
        raise BadMagicError("not a latentcodec stream (bad magic number)")
    if len(data) < 4:
        raise TruncatedStreamError("stream ends before the format version")
    if data[3] != FORMAT_VERSION:
        raise UnsupportedVersionError(f"format version {data[3]} (this decoder reads {FORMAT_VERSION})")
    if len(data) < MIN_STREAM_BYTES:
        raise TruncatedStreamError(f"stream of {len(data)} bytes is shorter than {MIN_STREAM_BYTES}")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise CorruptStreamError("CRC-32 mismatch")
    r = Cursor(data, 4, len(data) - 4)
    width = r.varint("width", MAX_SIDE)
    height = r.varint("height", MAX_SIDE)
    if width < 1 or height < 1 or width * height > MAX_PIXELS_FORMAT:
        raise LimitExceededError(f"image size {width}x{height} outside the format's limits")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"image of {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}")
    b = r.u8("latent byte")
    channels, factor = (b & 31) + 1, 1 << (b >> 5)
    chain = tuple(_stage_record(r, kind) for kind in KINDS)
    fingerprint = r.take(4, "fingerprint")
    side_info = r.take(r.varint("side info length", r.left()), "side info")
    payload = r.take(r.left(), "payload")
    return Stream(width, height, channels, factor, chain, fingerprint, side_info, payload)


# --- integer models and the rANS decoder (SPEC 3.2, 3.3) ---------------------------------

PREC = 24
ONE = 1 << PREC


class Categorical:
    """SPEC 3.3.1: constriction's leaky 24-bit model of integer frequencies ``f / 2^P``."""

    def __init__(self, freqs: Sequence[int], precision: int) -> None:
        f = np.asarray(freqs, dtype=np.int64)
        n = len(f)
        if n < 2:
            raise ValueError("a Categorical needs at least 2 entries")
        big_f = np.concatenate([[0], np.cumsum(f)[:-1]])
        left = ((big_f * (ONE - n)) >> precision) + np.arange(n, dtype=np.int64)
        self.left = [int(x) for x in left] + [ONE]

    def lookup(self, q: int) -> tuple[int, int, int]:
        """(symbol, left, prob) of the interval holding quantile ``q``."""
        left = self.left
        s = bisect.bisect_right(left, q, 0, len(left) - 1) - 1
        return s, left[s], left[s + 1] - left[s]

    def interval(self, s: int) -> tuple[int, int]:
        return self.left[s], self.left[s + 1] - self.left[s]


class Uniform:
    """SPEC 3.3.2: constriction's ``Uniform(n)`` at 24 bits."""

    def __init__(self, n: int) -> None:
        if not 2 <= n < ONE:
            raise ValueError("Uniform needs 2 <= n < 2^24")
        self.n = n
        self.u = ONE // n
        self.last_prob = ONE - (n - 1) * self.u

    def lookup(self, q: int) -> tuple[int, int, int]:
        s = min(q // self.u, self.n - 1)
        return s, s * self.u, (self.u if s < self.n - 1 else self.last_prob)

    def interval(self, s: int) -> tuple[int, int]:
        return s * self.u, (self.u if s < self.n - 1 else self.last_prob)


class RansDecoder:
    """SPEC 3.2: 32-bit words, 64-bit state, 24-bit models; words are read from the end."""

    def __init__(self, data: bytes) -> None:
        padded = bytes(data) + b"\x00" * (-len(data) % 4)
        self.words = list(struct.unpack(f"<{len(padded) // 4}I", padded))
        m = len(self.words)
        if m == 0:
            self.state, self.pos = 0, 0
            return
        if self.words[-1] == 0:
            raise CorruptStreamError("ANS words end in a zero word")
        self.state, self.pos = self.words[m - 1], m - 1
        if self.pos > 0:
            self.pos -= 1
            self.state = (self.state << 32) | self.words[self.pos]

    def decode(self, model: Categorical | Uniform) -> int:
        q = self.state & (ONE - 1)
        s, left, prob = model.lookup(q)
        self.state = (self.state >> PREC) * prob + (q - left)
        if self.state < (1 << 32) and self.pos > 0:
            self.pos -= 1
            self.state = (self.state << 32) | self.words[self.pos]
        return s

    def decode_many(self, model: Categorical, count: int) -> list[int]:
        """``count`` symbols of one Categorical model (the same steps, with local names)."""
        left = model.left
        n = len(left) - 1
        state, pos, words = self.state, self.pos, self.words
        mask, limit = ONE - 1, 1 << 32
        search = bisect.bisect_right
        out = [0] * count
        for k in range(count):
            q = state & mask
            s = search(left, q, 0, n) - 1
            lo = left[s]
            state = (state >> PREC) * (left[s + 1] - lo) + (q - lo)
            if state < limit and pos > 0:
                pos -= 1
                state = (state << 32) | words[pos]
            out[k] = s
        self.state, self.pos = state, pos
        return out

    def finish(self) -> None:
        if self.state != 0:
            raise CorruptStreamError("ANS payload has data left over after the last symbol")


def read_table(r: Cursor, precision: int, what: str) -> tuple[int, list[int]]:
    """SPEC 3.1: ``(m, freq)`` of one frequency table."""
    m = unzigzag(r.varint(f"{what} minimum", (1 << 32) - 1))
    k = r.varint(f"{what} alphabet size", 1 << 16)
    if k < 1:
        raise CorruptStreamError(f"{what}: empty alphabet")
    total = 1 << precision
    if k == 1:
        return m, [total]
    freq = [0] * k
    i = 0
    while i < k - 1:
        freq[i] = r.varint(f"{what} frequency", total)
        if freq[i] == 0:
            i += r.varint(f"{what} zero run", k - 2 - i)
        i += 1
    freq[k - 1] = total - sum(freq[: k - 1])
    if freq[k - 1] < 1 or freq[0] < 1:
        raise CorruptStreamError(f"{what}: frequencies do not sum to 2^{precision}")
    return m, freq


# --- stage params (SPEC 4-8) ------------------------------------------------------------

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
F32 = np.float32
UNIFORM_DEFAULT_STEP = 0.5
UINT8_DEFAULT_HALF_RANGE = struct.unpack("<f", struct.pack("<I", 0x40875E68))[0]  # SPEC 5.2


def _f32_param(params: bytes, default: float, lo: float, hi: float, what: str) -> float:
    if not params:
        return default
    if len(params) != 4:
        raise CorruptStreamError(f"{what}: expected 0 or 4 parameter bytes, got {len(params)}")
    (value,) = struct.unpack("<f", params)
    if not math.isfinite(value) or value <= 0:
        raise CorruptStreamError(f"{what}: invalid value {value!r}")
    if not lo <= value <= hi:
        raise RefusedStreamError(f"{what} {value} outside [{lo}, {hi}]")
    return value


def _no_params(record: StageRecord) -> None:
    if record.params:
        raise CorruptStreamError(f"{record.kind} {record.name!r} takes no parameters")


def check_record(record: StageRecord) -> None:
    """Stage version and the params of every built-in stage that need no decoding work."""
    supported = STAGE_VERSIONS.get(record.name)
    if supported is not None and record.version not in supported:
        raise UnsupportedVersionError(f"{record.kind} {record.name!r} version {record.version}")
    if record.name in ("taesd", "sd-vae", "vae", "zlib", "ans-binned"):
        _no_params(record)
    elif record.name in ("unet-denoise", "ddim-inversion", "controlnet-canny"):
        if len(record.params) not in (0, 4):
            raise CorruptStreamError(f"refiner {record.name!r}: expected 0 or 4 parameter bytes (seed)")


# --- entropy coders (SPEC 6.1, 6.2) --------------------------------------------------------


def decode_ans(payload: bytes, params: bytes, shape: tuple[int, ...]) -> np.ndarray:
    if not params:
        precision = 12
    elif len(params) == 1 and 8 <= params[0] <= 16:
        precision = params[0]
    else:
        raise CorruptStreamError("ans: bad table precision in params")
    channels = shape[0]
    per_channel = int(np.prod(shape[1:], dtype=np.int64))
    r = Cursor(payload)
    tables = [read_table(r, precision, f"ans channel {c} table") for c in range(channels)]
    for m, freq in tables:
        if m + len(freq) - 1 > INT32_MAX:
            raise CorruptStreamError("ans: table values do not fit in int32")
    coder = RansDecoder(r.take(r.left(), "ans words"))
    out = np.empty((channels, per_channel), dtype=np.int64)
    for c, (m, freq) in enumerate(tables):
        if len(freq) == 1:
            out[c] = m
        else:
            out[c] = np.asarray(coder.decode_many(Categorical(freq, precision), per_channel), dtype=np.int64) + m
    coder.finish()
    return out.astype(np.int32).reshape(shape)


ZLIB_WIDTHS = {0: np.dtype("u1"), 1: np.dtype("<u2"), 2: np.dtype("<u4")}


def decode_zlib(payload: bytes, params: bytes, shape: tuple[int, ...]) -> np.ndarray:
    if params:
        raise CorruptStreamError("zlib takes no parameters")
    count = int(np.prod(shape, dtype=np.int64))
    r = Cursor(payload)
    code = r.u8("zlib width code")
    if code not in ZLIB_WIDTHS:
        raise CorruptStreamError(f"zlib: unknown width code {code}")
    m = unzigzag(r.varint("zlib minimum", (1 << 32) - 1))
    dtype = ZLIB_WIDTHS[code]
    expected = count * dtype.itemsize
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(r.take(r.left(), "zlib data"), expected)
    except zlib.error as exc:
        raise CorruptStreamError(f"zlib: cannot inflate ({exc})") from exc
    if len(body) != expected or inflater.unconsumed_tail or not inflater.eof:
        raise CorruptStreamError("zlib: the stream does not hold exactly the expected symbols")
    values = np.frombuffer(body, dtype=dtype).astype(np.int64) + m
    if values.min() < INT32_MIN or values.max() > INT32_MAX:
        raise CorruptStreamError("zlib: symbols do not fit in int32")
    return values.astype(np.int32).reshape(shape)


ENTROPY_CODERS: dict[str, Callable[[bytes, bytes, tuple[int, ...]], np.ndarray]] = {
    "ans": decode_ans,
    "zlib": decode_zlib,
}


# --- quantizers (SPEC 5.1, 5.2) ----------------------------------------------------------------


def uniform_step(params: bytes) -> float:
    return _f32_param(params, UNIFORM_DEFAULT_STEP, 1e-4, 1e3, "uniform step")


def uint8_half_range(params: bytes) -> float:
    return _f32_param(params, UINT8_DEFAULT_HALF_RANGE, 1e-3, 1e4, "uint8 half range")


def dequantize_uniform(symbols: np.ndarray, params: bytes) -> np.ndarray:
    step = F32(uniform_step(params))
    return symbols.astype(F32) * step  # one f32 multiplication (SPEC 5.1)


def dequantize_uint8(symbols: np.ndarray, params: bytes) -> np.ndarray:
    d = F32(2.0 * uint8_half_range(params))  # exact
    return (symbols.astype(F32) / F32(255) - F32(0.5)) * d  # SPEC 5.2, in this order


QUANTIZERS: dict[str, tuple[Callable[[tuple[int, int, int]], tuple[int, ...]], Callable[[bytes], object], Callable[[np.ndarray, bytes], np.ndarray]]] = {
    # name: (symbol shape from latent shape, params check, dequantize)
    "uniform": (lambda shape: shape, uniform_step, dequantize_uniform),
    "uint8": (lambda shape: shape, uint8_half_range, dequantize_uint8),
}


# --- the whole decode ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    stream: Stream
    symbols: np.ndarray  # int32, the symbol shape
    latent: np.ndarray  # float32 (C, h, w)


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Parse, check and decode a stream to its symbols and dequantized latent."""
    stream = read_stream(data, max_pixels)
    for record in stream.chain:
        check_record(record)
    q, e = stream.stage("quantizer"), stream.stage("entropy_coder")
    if q.name not in QUANTIZERS:
        raise NotImplementedStageError(f"quantizer {q.name!r} is not implemented by the reference decoder")
    if e.name not in ENTROPY_CODERS:
        raise NotImplementedStageError(f"entropy coder {e.name!r} is not implemented by the reference decoder")
    symbol_shape, check_params, dequantize = QUANTIZERS[q.name]
    check_params(q.params)  # bad params are errors before any decoding
    symbols = ENTROPY_CODERS[e.name](stream.payload, e.params, symbol_shape(stream.latent_shape))
    return Decoded(stream, symbols, dequantize(symbols, q.params))


def symbols_sha256(symbols: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(symbols, dtype="<i4").tobytes()).hexdigest()


def latent_sha256(latent: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(latent, dtype="<f4").tobytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Decode latentcodec streams to symbols (reference decoder).")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decode-side pixel limit (default 16 MP)")
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            with open(path, "rb") as fh:
                out = decode(fh.read(), args.max_pixels)
        except (OSError, StreamError) as exc:
            print(f"{path}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        s = out.stream
        chain = " / ".join(f"{r.name} v{r.version}" for r in s.chain)
        print(f"{path}: {s.width}x{s.height}, chain {chain}, fingerprint {s.fingerprint.hex()}")
        print(f"  shape {'x'.join(map(str, out.symbols.shape))}  symbols_sha256 {symbols_sha256(out.symbols)}")
        print(f"  latent_sha256 {latent_sha256(out.latent)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
