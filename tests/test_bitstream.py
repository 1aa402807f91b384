"""The container: layout, limits, overhead, and robustness to damaged streams."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from latentcodec import bitstream
from latentcodec.bitstream import StageRecord, Stream
from latentcodec.decoding import decode_symbols
from latentcodec.errors import (
    BadMagicError,
    CorruptStreamError,
    LatentCodecError,
    LimitExceededError,
    TruncatedStreamError,
    UnknownStageError,
    UnsupportedVersionError,
)
from latentcodec.presets import PRESETS
from latentcodec import registry



def make_stream(**overrides) -> Stream:  # type: ignore[no-untyped-def]
    fields = dict(
        width=768,
        height=512,
        latent_channels=4,
        downsampling_factor=8,
        chain=(
            StageRecord("transform", "taesd", 1),
            StageRecord("quantizer", "uniform", 1, b"\x00\x00\x80\x3e"),
            StageRecord("entropy_coder", "ans", 1),
            StageRecord("refiner", "vae", 1),
        ),
        fingerprint=b"\x01\x02\x03\x04",
        side_info=b"side",
        payload=b"payload-bytes",
    )
    fields.update(overrides)
    return Stream(**fields)  # type: ignore[arg-type]


def test_round_trip_preserves_every_field() -> None:
    s = make_stream()
    data = bitstream.write(s)
    back = bitstream.read(data)
    assert back == s
    assert back.latent_shape == (4, 64, 96)
    assert back.total_bytes == len(data)
    assert data[:3] == b"\x8cLC" and data[3] == 1
    assert int.from_bytes(data[-4:], "little") == zlib.crc32(data[:-4])


def test_named_stage_and_long_params_round_trip() -> None:
    params = bytes(range(200))
    s = make_stream(chain=(
        StageRecord("transform", "my-plugin.transform_2", 7, params),
        StageRecord("quantizer", "uniform", 1),
        StageRecord("entropy_coder", "zlib", 1),
        StageRecord("refiner", "vae", 0),
    ))
    assert bitstream.read(bitstream.write(s)) == s


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_fixed_overhead_of_every_preset_is_at_most_32_bytes(preset: str) -> None:
    chain = []
    for kind, name in PRESETS[preset].stages.items():
        cls = registry.load(kind, name)
        stage = cls.from_config(PRESETS[preset].options.get(kind, {})) if kind != "transform" else None
        chain.append(StageRecord(kind, name, cls.version, stage.wire_params() if stage else b""))
    s = make_stream(chain=tuple(chain), side_info=b"", payload=b"x" * 5000)
    data = bitstream.write(s)
    overhead = bitstream.read(data).overhead_bytes
    assert overhead == len(data) - 5000
    assert overhead <= 32


def test_bad_magic_and_version() -> None:
    data = bitstream.write(make_stream())
    with pytest.raises(BadMagicError):
        bitstream.read(b"\x89PNG\r\n\x1a\n" + data[8:])
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        bitstream.read(data[:3] + b"\x02" + data[4:])
    with pytest.raises(TruncatedStreamError):
        bitstream.read(b"\x8cL")
    with pytest.raises(TruncatedStreamError):
        bitstream.read(b"")


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_limits_are_checked_before_allocation() -> None:
    head = b"\x8cLC\x01"
    # width = 2**34 as a 5-byte varint
    with pytest.raises(LimitExceededError):
        bitstream.read(_with_crc(head + b"\xff\xff\xff\xff\x01" + b"\x00" * 30))
    # varint longer than 5 bytes
    with pytest.raises(CorruptStreamError):
        bitstream.read(_with_crc(head + b"\xff" * 6 + b"\x00" * 30))
    # 65535 x 65535 exceeds the pixel limit
    with pytest.raises(LimitExceededError):
        bitstream.read(_with_crc(head + b"\xff\xff\x03\xff\xff\x03" + b"\x00" * 30))
    # side info length larger than the stream
    s = bitstream.write(make_stream(side_info=b"", payload=b""))
    body = bytearray(s[:-4])
    body[-1] = 0x7F
    with pytest.raises(LimitExceededError):
        bitstream.read(_with_crc(bytes(body)))


def test_unregistered_wire_id_is_an_unknown_stage() -> None:
    data = bytearray(bitstream.write(make_stream())[:-4])
    pos = 3 + 1 + 2 + 2 + 1  # transform id
    assert data[pos] == 1
    data[pos] = 99
    with pytest.raises(UnknownStageError, match="wire id 99"):
        bitstream.read(_with_crc(bytes(data)))


def test_writer_rejects_bad_streams() -> None:
    with pytest.raises(ValueError):
        bitstream.write(make_stream(downsampling_factor=6))
    with pytest.raises(ValueError):
        bitstream.write(make_stream(fingerprint=b"abc"))
    with pytest.raises(LimitExceededError):
        bitstream.write(make_stream(width=70000))


def _symbols_or_error(data: bytes):  # type: ignore[no-untyped-def]
    try:
        stream = bitstream.read(data)
        symbols, _ = decode_symbols(stream)
        return stream, symbols
    except LatentCodecError as exc:
        return exc


def test_every_truncation_and_single_byte_corruption_is_caught(kodim23_stream: bytes) -> None:
    """A real 8 KB stream: every truncation and every single-byte corruption either decodes
    identically or raises a LatentCodecError subclass."""
    data = kodim23_stream
    reference = _symbols_or_error(data)
    assert not isinstance(reference, Exception)
    ref_symbols = reference[1]
    for n in range(len(data)):
        assert isinstance(_symbols_or_error(data[:n]), LatentCodecError), n
    # Every one of the 255 other values at every position (about two million streams).
    for pos in range(len(data)):
        for flip in range(1, 256):
            damaged = bytearray(data)
            damaged[pos] ^= flip
            out = _symbols_or_error(bytes(damaged))
            if not isinstance(out, LatentCodecError):
                assert np.array_equal(out[1], ref_symbols), (pos, flip)


def test_parser_survives_corruption_behind_a_valid_crc(kodim23_stream: bytes) -> None:
    """Defence in depth: with the CRC recomputed, damaged headers and payloads still only
    ever raise LatentCodecError (or decode to *some* symbols of the promised shape)."""
    body = kodim23_stream[:-4]
    rng = np.random.default_rng(0)
    positions = list(range(min(48, len(body)))) + list(rng.integers(48, len(body), 64))
    for pos in positions:
        for value in (0x00, 0x7F, 0x80, 0xFF, int(rng.integers(256))):
            damaged = bytearray(body)
            damaged[pos] = value
            out = _symbols_or_error(_with_crc(bytes(damaged)))
            if not isinstance(out, LatentCodecError):
                stream, symbols = out
                assert symbols.shape == stream.latent_shape

