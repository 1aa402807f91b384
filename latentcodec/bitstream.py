"""Reading and writing the latentcodec container (normative text: bitstream/SPEC.md).

Byte order is little-endian; variable-length integers are unsigned LEB128.  Every size
is checked against an explicit limit before anything is allocated, and the CRC-32 over
the whole stream is verified before any field is trusted.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from .errors import (
    BadMagicError,
    CorruptStreamError,
    LimitExceededError,
    TruncatedStreamError,
    UnsupportedVersionError,
)
from .stages import STAGE_KINDS, StageKind
from .wire_ids import NAMES_BY_ID, WIRE_IDS

MAGIC = b"\x8cLC"
FORMAT_VERSION = 1
FINGERPRINT_BYTES = 4
CRC_BYTES = 4

MAX_SIDE = 65535
MAX_PIXELS = 1 << 28  # 268 Mpx: far above what any transform here can process
MAX_LATENT_CHANNELS = 32
MAX_PARAM_BYTES = 4096
MAX_NAME_BYTES = 32
MAX_VARINT_BYTES = 5  # values < 2**35, more than any field needs
_NAME_RE = re.compile(rb"^[a-z0-9][a-z0-9._-]{0,31}$")
# Smallest possible stream: magic, version, w, h, latent byte, 4 stages, fingerprint,
# side length, CRC.
MIN_STREAM_BYTES = 3 + 1 + 1 + 1 + 1 + 4 * 2 + FINGERPRINT_BYTES + 1 + CRC_BYTES


@dataclass(frozen=True)
class StageRecord:
    """One stage of the chain as stored: its kind, name, version and wire params."""

    kind: StageKind
    name: str
    version: int
    params: bytes = b""


@dataclass(frozen=True)
class Stream:
    """A parsed container."""

    width: int
    height: int
    latent_channels: int
    downsampling_factor: int
    chain: tuple[StageRecord, ...]
    fingerprint: bytes
    side_info: bytes
    payload: bytes
    version: int = FORMAT_VERSION
    total_bytes: int = field(default=0, compare=False)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        f = self.downsampling_factor
        return (self.latent_channels, -(-self.height // f), -(-self.width // f))

    def stage(self, kind: StageKind) -> StageRecord:
        return self.chain[STAGE_KINDS.index(kind)]

    @property
    def overhead_bytes(self) -> int:
        """Container bytes beyond side info and entropy payload."""
        return self.total_bytes - len(self.side_info) - len(self.payload)


# --- primitives -------------------------------------------------------------------
def write_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Bounds-checked cursor over bytes; every overrun is a :class:`TruncatedStreamError`."""

    def __init__(self, data: bytes, end: int | None = None) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise TruncatedStreamError(f"stream ends inside {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(chunk)

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str, limit: int) -> int:
        value = shift = 0
        for _ in range(MAX_VARINT_BYTES):
            byte = self.u8(what)
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if value > limit:
                    raise LimitExceededError(f"{what} is {value}, over the limit of {limit}")
                return value
        raise CorruptStreamError(f"{what} is not a valid varint")

    def remaining(self) -> int:
        return self.end - self.pos


# --- stage records ------------------------------------------------------------------
def _encode_stage(record: StageRecord) -> bytes:
    if not 0 <= record.version <= 15:
        raise ValueError(f"stage version must be 0..15, got {record.version}")
    wire_id = WIRE_IDS[record.kind].get(record.name)
    if wire_id is None:
        name = record.name.encode("ascii")
        if not _NAME_RE.match(name):
            raise ValueError(f"stage name {record.name!r} cannot be written to a stream")
        head = b"\x00" + bytes([len(name)]) + name
    else:
        head = write_varint(wire_id)
    n = len(record.params)
    if n > MAX_PARAM_BYTES:
        raise ValueError(f"stage params of {n} bytes exceed {MAX_PARAM_BYTES}")
    vp = bytes([(record.version << 4) | min(n, 15)])
    extra = write_varint(n - 15) if n >= 15 else b""
    return head + vp + extra + record.params


def _decode_stage(r: Reader, kind: StageKind) -> StageRecord:
    wire_id = r.varint(f"{kind} id", 127)
    if wire_id == 0:
        n = r.u8(f"{kind} name length")
        if not 1 <= n <= MAX_NAME_BYTES:
            raise CorruptStreamError(f"{kind} name length {n} out of range")
        raw = r.take(n, f"{kind} name")
        if not _NAME_RE.match(raw):
            raise CorruptStreamError(f"{kind} name {raw!r} is not a valid stage name")
        name = raw.decode("ascii")
    else:
        found = NAMES_BY_ID[kind].get(wire_id)
        if found is None:
            from .errors import UnknownStageError

            raise UnknownStageError(f"stream names {kind.replace('_', ' ')} wire id {wire_id}, which is not registered")
        name = found
    vp = r.u8(f"{kind} version")
    version, n = vp >> 4, vp & 0x0F
    if n == 15:
        n += r.varint(f"{kind} params length", MAX_PARAM_BYTES - 15)
    params = r.take(n, f"{kind} params")
    return StageRecord(kind, name, version, params)


# --- container ----------------------------------------------------------------------
def _check_size(width: int, height: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise LimitExceededError(f"image size {width}x{height} outside 1..{MAX_SIDE}")
    if width * height > MAX_PIXELS:
        raise LimitExceededError(f"image of {width * height} pixels exceeds {MAX_PIXELS}")


def write(stream: Stream) -> bytes:
    """Serialise a :class:`Stream` (``total_bytes`` and ``version`` are ignored)."""
    _check_size(stream.width, stream.height)
    f = stream.downsampling_factor
    log2f = f.bit_length() - 1
    if f < 1 or (1 << log2f) != f or log2f > 7:
        raise ValueError(f"downsampling factor {f} must be a power of two <= 128")
    if not 1 <= stream.latent_channels <= MAX_LATENT_CHANNELS:
        raise ValueError(f"latent channels {stream.latent_channels} outside 1..{MAX_LATENT_CHANNELS}")
    if len(stream.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError("fingerprint must be 4 bytes")
    if tuple(r.kind for r in stream.chain) != STAGE_KINDS:
        raise ValueError(f"chain must list one stage of each kind in order {STAGE_KINDS}")
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    out += write_varint(stream.width) + write_varint(stream.height)
    out.append((log2f << 5) | (stream.latent_channels - 1))
    for record in stream.chain:
        out += _encode_stage(record)
    out += stream.fingerprint
    out += write_varint(len(stream.side_info)) + stream.side_info
    out += stream.payload
    out += zlib.crc32(out).to_bytes(4, "little")
    return bytes(out)


def read(data: bytes) -> Stream:
    """Parse and verify a container; raise a :class:`StreamError` subclass on any defect."""
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise TruncatedStreamError("stream is shorter than the magic number")
        raise BadMagicError("not a latentcodec stream (bad magic number)")
    if len(data) < len(MAGIC) + 1:
        raise TruncatedStreamError("stream ends before the format version")
    version = data[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"stream format version {version} is not supported (this library reads version {FORMAT_VERSION})"
        )
    if len(data) < MIN_STREAM_BYTES:
        raise TruncatedStreamError(f"stream of {len(data)} bytes is shorter than the minimum {MIN_STREAM_BYTES}")
    stored_crc = int.from_bytes(data[-CRC_BYTES:], "little")
    if zlib.crc32(data[:-CRC_BYTES]) != stored_crc:
        raise CorruptStreamError("CRC-32 mismatch: the stream is corrupted or truncated")
    r = Reader(data, end=len(data) - CRC_BYTES)
    r.pos = len(MAGIC) + 1
    width = r.varint("image width", MAX_SIDE)
    height = r.varint("image height", MAX_SIDE)
    _check_size(width, height)
    latent_byte = r.u8("latent shape")
    channels, factor = (latent_byte & 0x1F) + 1, 1 << (latent_byte >> 5)
    chain = tuple(_decode_stage(r, kind) for kind in STAGE_KINDS)
    fingerprint = r.take(FINGERPRINT_BYTES, "weights fingerprint")
    side_len = r.varint("side info length", r.remaining())
    side_info = r.take(side_len, "side info")
    payload = r.take(r.remaining(), "payload")
    return Stream(
        width=width,
        height=height,
        latent_channels=channels,
        downsampling_factor=factor,
        chain=chain,
        fingerprint=fingerprint,
        side_info=side_info,
        payload=payload,
        version=version,
        total_bytes=len(data),
    )
