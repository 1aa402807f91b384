"""Reference decoder for latentcodec streams, written from ``bitstream/SPEC.md`` alone.

Pure Python and numpy: no constriction, no torch, no import of ``latentcodec``.  It
parses and CRC-checks the container (SPEC 2), reads the four stage records, applies the
decode-side pixel limit, and decodes the symbols and the dequantized float32 latent of
every built-in quantizer (``uniform``, ``uint8``, ``palette``: SPEC 5) and entropy coder
(``ans``, ``zlib``, ``ans-binned``, ``ans-factorized``, ``ans-hyperprior``,
``ans-context``: SPEC 6).  The rANS decoder and the 24-bit integer models it uses
(SPEC 3.2, 3.3) are implemented here from their integer definitions, the learned
coders' fixed-point networks (SPEC 3.6, 6.5) in exact int64 arithmetic.  Prior files and
palette codebooks are read as NPZ data files from the checkout's ``latentcodec/data``
(or the folders given).  Section numbers in comments refer to SPEC.md.

Usage::

    python bitstream/reference/decode.py FILE [FILE ...] [--max-pixels N] [--priors DIR] [--codebooks DIR]

prints, per file, the chain, the symbol shape and the SHA-256 of the symbols as int32
little-endian in C order (the ``symbols_sha256`` of ``bitstream/vectors/vectors.json``),
and the SHA-256 of the dequantized float32 latent.

From Python: ``decode(data) -> Decoded`` (``.stream``, ``.symbols``, ``.latent``).

One file on purpose (about 1,000 lines): a second implementation is read top to bottom
beside SPEC.md, and copied as a whole into other projects.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import hashlib
import json
import math
import re
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
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


class PriorMismatchError(RefusedStreamError):
    """No installed prior file has the identity the stream names (SPEC 7.3)."""


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


# --- decoding environment -------------------------------------------------------------------

#: The shipped data folder of a latentcodec checkout next to this file (data files only:
#: prior files and codebooks are read as NPZ archives, nothing is imported).
DATA_DIR = Path(__file__).resolve().parents[2] / "latentcodec" / "data"


@dataclass(frozen=True)
class Env:
    """Where installed prior files (SPEC 7) and codebooks (SPEC 5.3.4) are looked up."""

    prior_dirs: tuple[Path, ...] = (DATA_DIR / "priors",)
    codebook_dirs: tuple[Path, ...] = (DATA_DIR,)


# --- entropy coders: ans, zlib (SPEC 6.1, 6.2) ------------------------------------------------


def decode_ans(payload: bytes, record: StageRecord, shape: tuple[int, ...], env: Env) -> np.ndarray:
    params = record.params
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


def _to_int32(values: np.ndarray, what: str) -> np.ndarray:
    if values.size and (values.min() < INT32_MIN or values.max() > INT32_MAX):
        raise CorruptStreamError(f"{what}: symbols do not fit in int32")
    return values.astype(np.int32)


def decode_zlib(payload: bytes, record: StageRecord, shape: tuple[int, ...], env: Env) -> np.ndarray:
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
    return _to_int32(values, "zlib").reshape(shape)


# --- log bins and ans-binned (SPEC 3.4, 6.3) ------------------------------------------------------

MAX_BIN = 47


def bin_start_width(b: int) -> tuple[int, int]:
    if b < 4:
        return b, 1
    k = b - 4
    s = k // 2 + 1
    return (2 + (k & 1)) << s, 1 << s


def decode_binned(table: tuple[int, list[int]], count: int, coder: RansDecoder) -> list[int]:
    m, freq = table
    if len(freq) == 1:
        bins = [m] * count
    else:
        bins = [m + b for b in coder.decode_many(Categorical(freq, 12), count)]
    if bins and (min(bins) < 0 or max(bins) > MAX_BIN):
        raise CorruptStreamError("a log bin is out of range")
    values = []
    for b in bins:
        values.append(bin_start_width(b))
    out = [start for start, _ in values]
    for i, (_, width) in enumerate(values):  # all offsets after all bins
        if width > 1:
            out[i] += coder.decode(Uniform(width))
    return out


def decode_binned_coder(payload: bytes, record: StageRecord, shape: tuple[int, ...], env: Env) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    r = Cursor(payload)
    m = unzigzag(r.varint("ans-binned minimum", (1 << 32) - 1))
    table = read_table(r, 12, "ans-binned table")
    coder = RansDecoder(r.take(r.left(), "ans-binned words"))
    values = decode_binned(table, count, coder)
    coder.finish()
    return _to_int32(np.asarray(values, dtype=np.int64) + m, "ans-binned").reshape(shape)


# --- prior files, table sets, parts (SPEC 3.5, 7) -------------------------------------------------


@dataclass
class Prior:
    path: Path
    meta: dict
    arrays: dict  # name -> array, "meta" included (uint8 JSON bytes)

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise RefusedStreamError(f"prior {self.path.name} lacks array {key!r}")
        return self.arrays[key]


def load_prior_file(path: Path) -> Prior:
    stat = Path(path).stat()
    return _load_prior_file(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _load_prior_file(path: str, mtime_ns: int, size: int) -> Prior:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    return Prior(Path(path), meta, arrays)


def canonical_digest(arrays: dict) -> bytes:
    """SPEC 7.3, stage version 2: SHA-256 over the arrays in ascending name order."""
    h = hashlib.sha256()
    for name in sorted(arrays, key=lambda s: s.encode("utf-8")):
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        dtype = a.dtype.str.encode("ascii")
        raw = name.encode("utf-8")
        h.update(struct.pack("<I", len(raw)) + raw + bytes([len(dtype)]) + dtype + bytes([a.ndim]))
        h.update(b"".join(struct.pack("<Q", d) for d in a.shape) + struct.pack("<Q", a.nbytes))
        h.update(a.tobytes())
    return h.digest()


def prior_identity(path: Path, version: int) -> bytes:
    if version == 1:
        return hashlib.sha256(path.read_bytes()).digest()[:4]
    return canonical_digest(load_prior_file(path).arrays)[:4]


def find_prior(kind: str, record: StageRecord, env: Env) -> Prior:
    """SPEC 7.3: the installed prior of this kind whose identity is the params."""
    if len(record.params) != 4:
        raise CorruptStreamError(f"{record.name}: expected a 4-byte prior identity in params")
    for folder in env.prior_dirs:
        for path in sorted(Path(folder).glob("*.npz")) if Path(folder).is_dir() else []:
            try:
                if prior_identity(path, record.version) != record.params:
                    continue
                prior = load_prior_file(path)
            except (OSError, ValueError, KeyError):
                continue
            if prior.meta.get("kind") == kind:
                return prior
    raise PriorMismatchError(f"{record.name}: prior #{record.params.hex()} (identity v{record.version}) is not installed")


class TableSet:
    """SPEC 3.5: ``T`` tables ``freq[t, :n[t]]`` summing to ``2^bits``, values from ``lo[t]``, escape last."""

    def __init__(self, prior: Prior, prefix: str) -> None:
        self.freq = prior[f"{prefix}_freqs"].astype(np.int64)
        self.lo = prior[f"{prefix}_lo"].astype(np.int64)
        self.n = prior[f"{prefix}_n"].astype(np.int64)
        self.bits = int(prior.meta.get("table_bits", 16))
        for t in range(len(self.n)):
            if self.n[t] < 2 or self.n[t] > self.freq.shape[1] or int(self.freq[t, : self.n[t]].sum()) != 1 << self.bits:
                raise RefusedStreamError(f"{prior.path.name}: table {prefix}[{t}] is not normalised")
        self._models: dict[int, Categorical] = {}

    def __len__(self) -> int:
        return len(self.n)

    def model(self, t: int) -> Categorical:
        if t not in self._models:
            self._models[t] = Categorical(self.freq[t, : self.n[t]], self.bits)
        return self._models[t]


ESCAPE_MODEL = Uniform(1 << 16)


def decode_part(coder: RansDecoder, ids: np.ndarray, ts: TableSet) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if ids.size and (ids.min() < 0 or ids.max() >= len(ts)):
        raise CorruptStreamError("table id out of range")
    e = np.empty(len(ids), dtype=np.int64)
    for t in np.unique(ids).tolist():
        where = np.nonzero(ids == t)[0]  # ascending
        e[where] = coder.decode_many(ts.model(t), len(where))
    x = ts.lo[ids] + e
    escaped = np.nonzero(e == ts.n[ids] - 1)[0]
    for i in escaped.tolist():
        hi = coder.decode(ESCAPE_MODEL)
        lo16 = coder.decode(ESCAPE_MODEL)
        x[i] = unzigzag((hi << 16) | lo16)
    if escaped.size and np.abs(x[escaped]).max() > (1 << 30):
        raise CorruptStreamError("escaped value out of range")
    return x


# --- ans-factorized (SPEC 6.4) ---------------------------------------------------------------------


def decode_factorized(payload: bytes, record: StageRecord, shape: tuple[int, ...], env: Env) -> np.ndarray:
    ts = TableSet(find_prior("factorized", record, env), "y")
    if len(shape) < 2 or shape[0] != len(ts):
        raise RefusedStreamError(f"ans-factorized: symbols {shape} do not fit a prior of {len(ts)} channels")
    coder = RansDecoder(payload)
    ids = np.broadcast_to(np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    y = decode_part(coder, ids, ts)
    coder.finish()
    return y.astype(np.int32).reshape(shape)


# --- fixed-point networks and ans-hyperprior (SPEC 3.6, 6.5) ---------------------------------------

ACT_LIMIT = 1 << 24


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, grid: tuple[int, int, int] | None = None) -> np.ndarray:
    """SPEC 3.6, in exact int64 arithmetic."""
    cin, height, width = x.shape
    o, _, k, _ = w.shape
    r = k // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # (cin, H, W, k, k)
    if grid is not None:
        st, di, dj = grid
        win = win[:, di::st, dj::st]
    oh, ow = win.shape[1:3]
    if oh == 0 or ow == 0:
        return np.zeros((o, oh, ow), dtype=np.int64)
    cols = win.transpose(1, 2, 0, 3, 4).reshape(oh * ow, cin * k * k)
    acc = cols @ w.reshape(o, -1).T.astype(np.int64)
    return acc.T.reshape(o, oh, ow) + b.astype(np.int64)[:, None, None]


def layer(a: np.ndarray, shift: int, relu: bool) -> np.ndarray:
    a = a >> shift
    if relu:
        a = np.maximum(a, 0)
    return np.clip(a, -ACT_LIMIT, ACT_LIMIT)


def table_and_centre(mu: np.ndarray, ls: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.clip((ls + 589 + 16) // 32, 0, 47)
    mq = (mu + (1 << (7 - b))) >> (8 - b)
    return (s << b) + (mq & ((1 << b) - 1)), mq >> b


PHASE_OFFSETS = ((0, 0), (1, 1), (0, 1), (1, 0))


def phase_grid(phases: int, p: int) -> tuple[int, int, int]:
    if phases == 4:
        return (2, *PHASE_OFFSETS[p])
    if p < 4:  # phases == 7
        di, dj = PHASE_OFFSETS[p]
        return (4, 2 * di, 2 * dj)
    return (2, *PHASE_OFFSETS[p - 3])


def phase_map(h: int, w: int, phases: int) -> np.ndarray:
    i, j = np.indices((h, w))
    if phases == 2:
        return (i + j) % 2
    out = np.full((h, w), -1, dtype=np.int64)
    for p in range(phases):
        st, di, dj = phase_grid(phases, p)
        out[di::st, dj::st] = p
    assert (out >= 0).all()
    return out


def decode_hyperprior(payload: bytes, record: StageRecord, shape: tuple[int, ...], env: Env) -> np.ndarray:
    prior = find_prior("hyperprior", record, env)
    meta = prior.meta
    c_y, c_z = int(meta["channels"]), int(meta["z_channels"])
    b = int(meta.get("mean_bits", 2))
    z_tables, y_tables = TableSet(prior, "z"), TableSet(prior, "y")
    if not 0 <= b <= 5 or len(y_tables) != 48 << b or len(z_tables) != c_z:
        raise RefusedStreamError(f"{prior.path.name}: table counts do not fit mean_bits {b}")
    if len(shape) != 3 or shape[0] != c_y:
        raise RefusedStreamError(f"ans-hyperprior: symbols {shape} do not fit a prior of {c_y} channels")
    _, h, w = shape
    coder = RansDecoder(payload)
    zs = (c_z, -(-h // 4), -(-w // 4))
    z = decode_part(coder, np.broadcast_to(np.arange(c_z)[:, None, None], zs), z_tables).reshape(zs)
    a = z << 8
    for i in range(3):
        if i < 2:
            a = a.repeat(2, axis=1).repeat(2, axis=2)
        a = layer(conv(a, prior[f"hs{i}_w"], prior[f"hs{i}_b"]), int(prior[f"hs{i}_shift"][0]), i < 2)
    mu_h, ls_h = a[:c_y, :h, :w], a[c_y : 2 * c_y, :h, :w]
    y = np.zeros(shape, dtype=np.int64)
    ctx = meta.get("context")
    if not ctx:
        table, centre = table_and_centre(mu_h, ls_h, b)
        y = decode_part(coder, table, y_tables).reshape(shape) + centre
    else:
        order, phases, all_hyper = [int(c) for c in ctx["order"]], int(ctx["phases"]), bool(ctx.get("all_hyper", False))
        if sorted(order) != list(range(c_y)) or phases not in (2, 4, 7):
            raise RefusedStreamError(f"{prior.path.name}: bad context")
        pmap = phase_map(h, w, phases)
        for k, c in enumerate(order):
            for p in range(phases):
                sel = pmap == p
                if not sel.any():
                    continue
                parts = [mu_h, ls_h] if all_hyper else [mu_h[c : c + 1], ls_h[c : c + 1]]
                parts.append(y[order[:k]] << 8)
                if p > 0:
                    parts.append(np.where(pmap < p, y[c], 0)[None] << 8)
                inputs = np.clip(np.concatenate(parts), -ACT_LIMIT, ACT_LIMIT)
                g = k * phases + p
                net = [(prior[f"ctx{g}_{l}_w"], prior[f"ctx{g}_{l}_b"], int(prior[f"ctx{g}_{l}_shift"][0])) for l in range(3)]
                if phases in (4, 7):
                    grid = phase_grid(phases, p)
                    a = layer(conv(inputs, net[0][0], net[0][1], grid), net[0][2], True)
                    a = layer(conv(a, net[1][0], net[1][1]), net[1][2], True)
                    a = layer(conv(a, net[2][0], net[2][1]), net[2][2], False)
                    dmu, dls = a[0].ravel(), a[1].ravel()
                else:
                    a = inputs
                    for l, (wl, bl, sl) in enumerate(net):
                        a = layer(conv(a, wl, bl), sl, l < 2)
                    dmu, dls = a[0][sel], a[1][sel]
                table, centre = table_and_centre(mu_h[c][sel] + dmu, ls_h[c][sel] + dls, b)
                y[c][sel] = decode_part(coder, table, y_tables) + centre
    coder.finish()
    if np.abs(y).max(initial=0) > (1 << 30):
        raise CorruptStreamError("ans-hyperprior: decoded symbol out of range")
    return y.astype(np.int32)


# --- ans-context (SPEC 6.6) --------------------------------------------------------------------------

EDGES = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24]
NUM_BINS = 11


def decode_context(payload: bytes, record: StageRecord, shape: tuple[int, ...], env: Env) -> np.ndarray:
    ts = TableSet(find_prior("context", record, env), "y")
    n_scales = len(ts) // 4
    if len(shape) != 3:
        raise RefusedStreamError(f"ans-context: expected (C, h, w) symbols, got {shape}")
    c, h, w = shape
    levels = 0
    while levels < 6 and min(-(-h // (1 << levels)), -(-w // (1 << levels))) >= 8:
        levels += 1
    r = Cursor(payload)

    def scale_byte(what: str) -> int:
        v = r.u8(what)
        if v >= n_scales:
            raise CorruptStreamError(f"ans-context: {what} {v} out of range")
        return v

    centre, cscale = [], []
    for _ in range(c):
        centre.append(unzigzag(r.varint("ans-context centre", (1 << 32) - 1)))
        cscale.append(scale_byte("coarse scale"))
    steps = [(k, phase) for k in range(levels - 1, -1, -1) for phase in (1, 2)]
    n_ctx = c * NUM_BINS
    step_scales = []
    for _ in steps:
        bitmap = r.take((n_ctx + 7) // 8, "context bitmap")
        used = [bool(bitmap[i // 8] >> (7 - i % 8) & 1) for i in range(n_ctx)]
        step_scales.append([scale_byte("context scale") if u else None for u in used])
    coder = RansDecoder(r.take(r.left(), "ans-context words"))
    x = np.zeros(shape, dtype=np.int64)
    coarse = x[:, :: 1 << levels, :: 1 << levels]
    ids = np.broadcast_to((4 * np.asarray(cscale, dtype=np.int64))[:, None, None], coarse.shape)
    coarse[...] = decode_part(coder, ids, ts).reshape(coarse.shape) + np.asarray(centre, dtype=np.int64)[:, None, None]
    for (k, phase), scales in zip(steps, step_scales):
        grid = x[:, :: 1 << k, :: 1 << k]  # a view
        gh, gw = grid.shape[1:]
        i, j = np.indices((gh, gw))
        mask = ((i % 2 == 1) & (j % 2 == 1)) if phase == 1 else ((i + j) % 2 == 1)
        known_mask = (i % 2 == 0) & (j % 2 == 0)
        if phase == 2:
            known_mask |= (i % 2 == 1) & (j % 2 == 1)
        known = np.where(known_mask, grid, 0)
        pad = np.pad(known, ((0, 0), (1, 1), (1, 1)), mode="reflect")  # both sides >= 8 here
        pi, pj = np.nonzero(mask)  # row-major
        offsets = ((-1, -1), (-1, 1), (1, -1), (1, 1)) if phase == 1 else ((-1, 0), (1, 0), (0, -1), (0, 1))
        neigh = np.stack([pad[:, pi + 1 + di, pj + 1 + dj] for di, dj in offsets])  # (4, C, npos)
        s4 = neigh.sum(axis=0)
        act = neigh.max(axis=0) - neigh.min(axis=0)
        bins = (act[..., None] > np.asarray(EDGES)).sum(axis=-1)
        ctx = np.arange(c)[:, None] * NUM_BINS + bins  # (C, npos), channel-major
        table = np.empty(ctx.shape, dtype=np.int64)
        for idx, cx in np.ndenumerate(ctx):
            if scales[cx] is None:
                raise CorruptStreamError("ans-context: a symbol falls in a context the stream declared unused")
            table[idx] = 4 * scales[cx] + (int(s4[idx]) & 3)
        values = decode_part(coder, table, ts).reshape(ctx.shape)
        grid[:, pi, pj] = values + (s4 >> 2)
    coder.finish()
    return _to_int32(x, "ans-context")


ENTROPY_CODERS: dict[str, Callable[[bytes, StageRecord, tuple[int, ...], Env], np.ndarray]] = {
    "ans": decode_ans,
    "zlib": decode_zlib,
    "ans-binned": decode_binned_coder,
    "ans-factorized": decode_factorized,
    "ans-hyperprior": decode_hyperprior,
    "ans-context": decode_context,
}


# --- quantizers (SPEC 5) ------------------------------------------------------------------------------


def uniform_step(params: bytes) -> float:
    return _f32_param(params, UNIFORM_DEFAULT_STEP, 1e-4, 1e3, "uniform step")


def uint8_half_range(params: bytes) -> float:
    return _f32_param(params, UINT8_DEFAULT_HALF_RANGE, 1e-3, 1e4, "uint8 half range")


def grid_to_latent(values: np.ndarray, half_range: float) -> np.ndarray:
    """SPEC 5.2: ``((fl32(v) / 255) - 0.5) * 2r`` in f32, in this order."""
    return (values.astype(F32) / F32(255) - F32(0.5)) * F32(2.0 * half_range)


@dataclass(frozen=True)
class PaletteConfig:
    colors: int
    compact: bool
    ranks: bool
    codebook: int | None
    half_range: float


def palette_config(params: bytes) -> PaletteConfig:
    """SPEC 5.3 params."""
    if len(params) < 2 or params[1] & ~15:
        raise CorruptStreamError("palette: bad params")
    colors, flags = params[0] + 1, params[1]
    if colors < 2:
        raise CorruptStreamError("palette: fewer than 2 colours")
    rest = params[2:]
    codebook = None
    if flags & 4:
        if not rest:
            raise CorruptStreamError("palette: codebook id missing")
        codebook, rest = rest[0], rest[1:]
    half_range = UINT8_DEFAULT_HALF_RANGE
    if flags & 8:
        if len(rest) != 4:
            raise CorruptStreamError("palette: bad half range")
        (half_range,) = struct.unpack("<f", rest)
        if not math.isfinite(half_range) or not 1e-3 <= half_range <= 1e4:
            raise CorruptStreamError("palette: invalid half range")
        rest = b""
    if rest:
        raise CorruptStreamError("palette: params have bytes left over")
    return PaletteConfig(colors, bool(flags & 1), bool(flags & 2), codebook, half_range)


CODEBOOKS = {1: "palette-taesd-v1.npz"}  # SPEC 5.3.4


def load_codebook(cid: int, colors: int, env: Env) -> np.ndarray:
    if cid not in CODEBOOKS:
        raise RefusedStreamError(f"palette: unknown codebook id {cid}")
    for folder in env.codebook_dirs:
        path = Path(folder) / CODEBOOKS[cid]
        if path.is_file():
            with np.load(path, allow_pickle=False) as npz:
                if str(colors) not in npz.files:
                    raise RefusedStreamError(f"palette: codebook {cid} has no palette of {colors} entries")
                return np.asarray(npz[str(colors)], dtype=np.int64)
    raise RefusedStreamError(f"palette: codebook file {CODEBOOKS[cid]} is not installed")


def decode_compact_palette(data: bytes, count: int, channels: int) -> np.ndarray:
    """SPEC 5.3.1, the compact code."""
    r = Cursor(data)
    first = r.u8("palette first entry")
    ranges = [(r.u8("palette minimum"), r.u8("palette maximum")) for _ in range(1, channels)]
    table = read_table(r, 12, "palette delta table") if count > 1 else None
    coder = RansDecoder(r.take(r.left(), "palette words"))
    out = np.empty((count, channels), dtype=np.int64)
    deltas = decode_binned(table, count - 1, coder) if table is not None else []
    out[:, 0] = first + np.concatenate([[0], np.cumsum(np.asarray(deltas, dtype=np.int64))])
    for c, (lo, hi) in enumerate(ranges, start=1):
        if hi < lo:
            raise CorruptStreamError("palette: channel range is inverted")
        if hi == lo:
            out[:, c] = lo
        else:
            model = Uniform(hi - lo + 1)
            out[:, c] = [lo + coder.decode(model) for _ in range(count)]
    coder.finish()
    if out.max() > 255:
        raise CorruptStreamError("palette: entries are corrupt")
    return out


def palette_from_side_info(side: bytes, cfg: PaletteConfig, env: Env) -> np.ndarray:
    if cfg.codebook is not None:
        if side:
            raise CorruptStreamError("palette: side info with a global codebook")
        return load_codebook(cfg.codebook, cfg.colors, env)
    if len(side) < 2:
        raise CorruptStreamError("palette: side info is too short")
    count, channels = side[0] + 1, side[1] + 1
    if cfg.compact:
        return decode_compact_palette(side[2:], count, channels)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(side[2:], count * channels)
    except zlib.error as exc:
        raise CorruptStreamError(f"palette: cannot inflate ({exc})") from exc
    if len(raw) != count * channels or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise CorruptStreamError("palette: zlib palette is not exactly K*C bytes")
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, channels).astype(np.int64)


def ranks_to_indices(ranks: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """SPEC 5.3.2: decode by anti-diagonals."""
    h, w = ranks.shape
    k, c = palette.shape
    if ranks.size and (ranks.min() < 0 or ranks.max() >= k):
        raise CorruptStreamError("palette: rank outside the palette")
    index = np.zeros((h, w), dtype=np.int64)
    colour = np.zeros((h, w, c), dtype=np.int64)
    mid = np.full(c, 128, dtype=np.int64)
    for t in range(h + w - 1):
        i = np.arange(max(0, t - w + 1), min(h - 1, t) + 1)
        j = t - i
        top_raw = colour[np.maximum(i - 1, 0), j]
        left = np.where((j > 0)[:, None], colour[i, np.maximum(j - 1, 0)], np.where((i > 0)[:, None], top_raw, mid))
        top = np.where((i > 0)[:, None], top_raw, left)
        pred = (left + top + 1) // 2
        d = ((pred[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)  # (n, K)
        order = np.argsort(d, axis=1, kind="stable")
        chosen = order[np.arange(len(i)), ranks[i, j]]
        index[i, j] = chosen
        colour[i, j] = palette[chosen]
    return index


def dequantize_palette(symbols: np.ndarray, side: bytes, params: bytes, channels: int, env: Env) -> np.ndarray:
    cfg = palette_config(params)
    palette = palette_from_side_info(side, cfg, env)
    if palette.shape[1] != channels:
        raise CorruptStreamError(f"palette: {palette.shape[1]} channels, the header says {channels}")
    s = symbols[0].astype(np.int64)
    if cfg.ranks:
        index = ranks_to_indices(s, palette)
    else:
        if s.size and (s.min() < 0 or s.max() >= len(palette)):
            raise CorruptStreamError("palette: index outside the palette")
        index = s
    return np.ascontiguousarray(np.moveaxis(grid_to_latent(palette[index], cfg.half_range), -1, 0))


@dataclass(frozen=True)
class QuantizerSpec:
    symbol_shape: Callable[[tuple[int, int, int]], tuple[int, ...]]
    check_params: Callable[[bytes], object]
    dequantize: Callable[[np.ndarray, bytes, bytes, int, Env], np.ndarray]  # symbols, side info, params, C, env


QUANTIZERS: dict[str, QuantizerSpec] = {
    "uniform": QuantizerSpec(lambda s: s, uniform_step, lambda y, side, p, c, env: y.astype(F32) * F32(uniform_step(p))),
    "uint8": QuantizerSpec(lambda s: s, uint8_half_range, lambda y, side, p, c, env: grid_to_latent(y, uint8_half_range(p))),
    "palette": QuantizerSpec(lambda s: (1, *s[1:]), palette_config, dequantize_palette),
}


# --- the whole decode ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    stream: Stream
    symbols: np.ndarray  # int32, the symbol shape
    latent: np.ndarray  # float32 (C, h, w)


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, env: Env | None = None) -> Decoded:
    """Parse, check and decode a stream to its symbols and dequantized latent."""
    env = env or Env()
    stream = read_stream(data, max_pixels)
    for record in stream.chain:
        check_record(record)
    q, e = stream.stage("quantizer"), stream.stage("entropy_coder")
    if q.name not in QUANTIZERS:
        raise NotImplementedStageError(f"quantizer {q.name!r} is not implemented by the reference decoder")
    if e.name not in ENTROPY_CODERS:
        raise NotImplementedStageError(f"entropy coder {e.name!r} is not implemented by the reference decoder")
    quantizer = QUANTIZERS[q.name]
    quantizer.check_params(q.params)  # bad params are errors before any decoding
    symbols = ENTROPY_CODERS[e.name](stream.payload, e, quantizer.symbol_shape(stream.latent_shape), env)
    latent = quantizer.dequantize(symbols, stream.side_info, q.params, stream.channels, env)
    return Decoded(stream, symbols, latent)


def symbols_sha256(symbols: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(symbols, dtype="<i4").tobytes()).hexdigest()


def latent_sha256(latent: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(latent, dtype="<f4").tobytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Decode latentcodec streams to symbols (reference decoder).")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decode-side pixel limit (default 16 MP)")
    parser.add_argument("--priors", action="append", default=None, metavar="DIR", help="folder of prior files (repeatable; default: the checkout's shipped priors)")
    parser.add_argument("--codebooks", action="append", default=None, metavar="DIR", help="folder of palette codebooks")
    args = parser.parse_args(argv)
    env = Env(
        tuple(Path(d) for d in args.priors) if args.priors else Env.prior_dirs,
        tuple(Path(d) for d in args.codebooks) if args.codebooks else Env.codebook_dirs,
    )
    status = 0
    for path in args.files:
        try:
            with open(path, "rb") as fh:
                out = decode(fh.read(), args.max_pixels, env)
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
