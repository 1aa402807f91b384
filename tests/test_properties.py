"""Hypothesis property tests: every built-in entropy coder, quantizer and the container.

* Coders: ``decode(encode(x)) == x`` exactly on random symbol arrays of random shapes
  (1-pixel sides, odd sizes) and alphabets (small, large, sparse, far outliers that take
  the escape paths, int32 extremes).  Inside a coder's documented domain encoding must
  succeed; outside it the encoder may refuse with ``StageInputError``, never anything
  else, and never produce bytes that do not decode back.
* Quantizers: shapes and dtypes, idempotence on their own output, exact f32 arithmetic
  of dequantization, arbitrary symbols either dequantize or give ``CorruptStreamError``,
  and the wire params round trip.
* Container: ``bitstream.write`` / ``read`` round trip of random records, names, params
  lengths and side info; every truncation is refused.

The default run is derandomized and takes well under a minute; a long run:
``LC_HYPOTHESIS_PROFILE=long python -m pytest -q tests/test_properties.py`` (100x the
examples, random seeds).
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from latentcodec import bitstream, registry
from latentcodec.bitstream import StageRecord, Stream
from latentcodec.errors import CorruptStreamError, LatentCodecError, StageInputError, TruncatedStreamError
from latentcodec.quantizers._wire import as_float32
from latentcodec.wire_ids import WIRE_IDS

settings.register_profile("default", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = os.environ.get("LC_HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)
SCALE = 100 if PROFILE == "long" else 1


def examples(n: int) -> settings:
    return settings(max_examples=n * SCALE)


INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


# --- symbol arrays -----------------------------------------------------------------------
sides = st.one_of(st.just(1), st.integers(1, 19))


@st.composite
def symbol_arrays(draw, channels=None, max_side: int = 19, kind=None):  # type: ignore[no-untyped-def]
    """Int32 arrays ``(C, h, w)`` of one alphabet family."""
    c = draw(st.integers(1, 5)) if channels is None else channels
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kind = kind or draw(st.sampled_from(["small", "large", "sparse", "outliers", "constant", "extremes"]))
    n = c * h * w
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "small":
        x = rng.integers(-3, 4, n)
    elif kind == "large":
        span = draw(st.sampled_from([300, 5000, 1 << 16, 1 << 20]))
        x = rng.integers(-span, span + 1, n)
    elif kind == "sparse":  # mostly zeros, a few values anywhere in a wide range
        x = np.where(rng.random(n) < 0.05, rng.integers(-(1 << 20), (1 << 20) + 1, n), 0)
    elif kind == "outliers":  # a smooth body and far outliers: escapes in the learned coders
        x = np.rint(rng.normal(0, 2, n)).astype(np.int64)
        k = draw(st.integers(1, 3))
        far = draw(st.lists(st.sampled_from([1000, -40000, 1 << 20, -(1 << 24), (1 << 29) - 1, -(1 << 29)]), min_size=k, max_size=k))
        x[rng.integers(0, n, k)] = far
    elif kind == "constant":
        x = np.full(n, draw(st.integers(INT32_MIN, INT32_MAX)))
    else:  # int32 extremes
        x = rng.choice(np.array([INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX]), n)
    return x.astype(np.int32).reshape(c, h, w)


def span_per_channel(s: np.ndarray) -> int:
    flat = s.reshape(s.shape[0], -1).astype(np.int64)
    return int((flat.max(1) - flat.min(1)).max()) + 1


def round_trip(coder, symbols: np.ndarray, must_encode: bool) -> None:  # type: ignore[no-untyped-def]
    """Encode, rebuild the decoder from the wire params alone, decode: exact, or refused."""
    try:
        data = coder.encode(symbols)
    except StageInputError:
        assert not must_encode, "the encoder refused symbols inside its domain"
        return
    decoder = type(coder).from_config({**coder.config_from_wire(coder.wire_params())})
    back = decoder.decode(data, symbols.shape)
    assert back.dtype == np.int32 and back.shape == symbols.shape
    assert np.array_equal(back, symbols), "decode(encode(x)) != x"


@examples(150)
@given(symbol_arrays(), st.integers(8, 16))
def test_ans_round_trip(symbols: np.ndarray, bits: int) -> None:
    from latentcodec.entropy.ans import ANSCoder

    distinct = max(len(np.unique(ch)) for ch in symbols.reshape(symbols.shape[0], -1))
    round_trip(ANSCoder(table_bits=bits), symbols, must_encode=span_per_channel(symbols) <= 1 << 16 and distinct <= 1 << bits)


@examples(100)
@given(symbol_arrays())
def test_zlib_round_trip(symbols: np.ndarray) -> None:
    from latentcodec.entropy.zlib_coder import ZlibCoder

    round_trip(ZlibCoder(), symbols, must_encode=True)


@examples(100)
@given(symbol_arrays())
def test_ans_binned_round_trip(symbols: np.ndarray) -> None:
    from latentcodec.entropy.binned import MAX_VALUE, BinnedANSCoder

    span = int(symbols.max()) - int(symbols.min()) + 1
    round_trip(BinnedANSCoder(), symbols, must_encode=span <= MAX_VALUE)


def _within(symbols: np.ndarray, bound: int) -> bool:
    return int(np.abs(symbols.astype(np.int64)).max()) <= bound


@examples(60)
@given(symbol_arrays(channels=4, kind=None))
def test_ans_factorized_round_trip(symbols: np.ndarray) -> None:
    from latentcodec.entropy.factorized import ANSFactorizedCoder

    # escapes carry |value| <= 2^30 (SPEC 3.5)
    inside = _within(symbols, 1 << 30)
    assume(inside)  # beyond it see test_learned_coders_beyond_the_escape_range
    round_trip(ANSFactorizedCoder(), symbols, must_encode=True)


@examples(25)
@given(symbol_arrays(channels=4, max_side=13))
def test_ans_hyperprior_round_trip(symbols: np.ndarray) -> None:

    assume(_within(symbols, 1 << 29))  # coded values y - centre, |centre| < 2^17, stay escapable
    round_trip(_hyperprior(), symbols, must_encode=True)


@examples(60)
@given(symbol_arrays(max_side=24))
def test_ans_context_round_trip(symbols: np.ndarray) -> None:
    assume(_within(symbols, 1 << 27))  # residuals against a sum of 4 neighbours / 4 stay escapable
    round_trip(_context(), symbols, must_encode=True)


_CACHE: dict = {}


def _hyperprior():  # type: ignore[no-untyped-def]
    if "hp" not in _CACHE:
        from latentcodec.entropy.hyperprior import ANSHyperpriorCoder

        _CACHE["hp"] = ANSHyperpriorCoder()
    return _CACHE["hp"]


def _context():  # type: ignore[no-untyped-def]
    if "ctx" not in _CACHE:
        from latentcodec.entropy.pyramid import ANSContextCoder

        _CACHE["ctx"] = ANSContextCoder()
    return _CACHE["ctx"]


@pytest.mark.parametrize("name", ["ans-factorized", "ans-hyperprior", "ans-context"])
@pytest.mark.parametrize("value", [(1 << 30) + 1, INT32_MAX, INT32_MIN])
def test_learned_coders_beyond_the_escape_range(name: str, value: int) -> None:
    """A value an escape cannot carry: refused by the encoder or decoded exactly, never
    bytes that the decoder then calls corrupt."""
    symbols = np.zeros((4, 9, 10), np.int32)
    symbols[1, 4, 5] = value
    coder = {"ans-hyperprior": _hyperprior, "ans-context": _context}.get(name, lambda: registry.create("entropy_coder", name))()
    try:
        data = coder.encode(symbols)
    except StageInputError:
        return
    # (before the encoders checked the range, they wrote streams their decoders call corrupt)
    assert np.array_equal(coder.decode(data, symbols.shape), symbols)


# --- quantizers --------------------------------------------------------------------------
latent_arrays = st.builds(
    lambda c, h, w, scale, seed: (np.random.default_rng(seed).standard_normal((c, h, w)) * scale).astype(np.float32),
    st.integers(1, 4), sides, sides, st.sampled_from([0.01, 1.0, 5.0, 100.0]), st.integers(0, 2**32 - 1),
)


@examples(100)
@given(latent_arrays, st.floats(1e-4, 1e3))
def test_uniform_quantizer(latent: np.ndarray, step: float) -> None:
    from latentcodec.quantizers.uniform import MAX_ABS_SYMBOL, UniformQuantizer

    q = UniformQuantizer(step=step)
    assume(np.abs(latent).max() / q.step < MAX_ABS_SYMBOL)
    out = q.quantize(latent)
    assert out.symbols.shape == latent.shape and out.symbols.dtype == np.int32 and out.side_info == b""
    restored = q.dequantize(out.symbols, out.side_info)
    assert restored.dtype == np.float32 and restored.shape == latent.shape
    assert np.array_equal(restored, out.symbols.astype(np.float32) * np.float32(q.step))  # SPEC 5.1, one f32 product
    assert np.array_equal(q.quantize(restored).symbols, out.symbols)  # idempotent on its own output
    assert float(np.abs(restored - latent).max()) <= q.step * 0.5001 + 1e-6 * float(np.abs(latent).max())
    wire = UniformQuantizer.from_config(UniformQuantizer.config_from_wire(q.wire_params()))
    assert wire.step == q.step and wire.wire_params() == q.wire_params()
    assert len(q.wire_params()) in (0, 4)


@examples(100)
@given(latent_arrays, st.floats(1e-3, 1e4))
def test_uint8_quantizer(latent: np.ndarray, half_range: float) -> None:
    from latentcodec.quantizers.uint8 import Uint8Quantizer

    q = Uint8Quantizer(half_range=half_range)
    out = q.quantize(latent)
    assert out.symbols.shape == latent.shape and out.symbols.min() >= 0 and out.symbols.max() <= 255
    restored = q.dequantize(out.symbols)
    f = np.float32
    expected = (out.symbols.astype(f) / f(255) - f(0.5)) * f(2 * q.half_range)  # SPEC 5.2, three f32 operations
    assert np.array_equal(restored, expected)
    assert np.array_equal(q.quantize(restored).symbols, out.symbols)
    wire = Uint8Quantizer.from_config(Uint8Quantizer.config_from_wire(q.wire_params()))
    assert wire.half_range == q.half_range and wire.wire_params() == q.wire_params()


@examples(100)
@given(st.sampled_from(["uniform", "uint8"]), symbol_arrays(kind="extremes"))
def test_scalar_dequantize_takes_any_int32(name: str, symbols: np.ndarray) -> None:
    """Any int32 symbols dequantize to a finite latent (the decoder does not range-check)."""
    q = registry.create("quantizer", name)
    restored = q.dequantize(symbols)
    assert restored.dtype == np.float32 and restored.shape == symbols.shape and np.isfinite(restored).all()


palette_configs = st.one_of(
    st.fixed_dictionaries({
        "colors": st.integers(2, 256),
        "symbols": st.sampled_from(["index", "rank"]),
        "palette_coding": st.sampled_from(["zlib", "compact"]),
        "dither": st.sampled_from(["none", "fs", "ordered"]),
        "half_range": st.sampled_from([4.2302742, 1.0, 60.0]),
    }),
    st.fixed_dictionaries({
        "colors": st.sampled_from([2, 4, 8, 16, 32, 64, 128, 256]),
        "symbols": st.sampled_from(["index", "rank"]),
        "codebook": st.just("taesd-v1"),
        "dither": st.sampled_from(["none", "fs"]),
    }),
)


@examples(60)
@given(palette_configs, st.integers(1, 12), st.integers(1, 12), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_palette_quantizer(config: dict, h: int, w: int, c: int, seed: int) -> None:
    from latentcodec.quantizers.palette import PaletteQuantizer

    if "codebook" in config:
        c = 4
    config = {**config, "iterations": 4}
    q = PaletteQuantizer(**config)
    latent = (np.random.default_rng(seed).standard_normal((c, h, w)) * 2).astype(np.float32)
    out = q.quantize(latent)
    assert out.symbols.shape == (1, h, w) and out.symbols.dtype == np.int32
    assert 0 <= out.symbols.min() and out.symbols.max() < q.colors
    restored = q.dequantize(out.symbols, out.side_info)
    assert restored.shape == latent.shape and restored.dtype == np.float32
    again = q.quantize(restored)
    if config["dither"] != "ordered":  # idempotent: the restored latent is made of palette entries
        assert np.array_equal(q.dequantize(again.symbols, again.side_info), restored)
    # (ordered dithering adds its threshold pattern to exact entries too, so it may move them)
    decoder = PaletteQuantizer.from_config(PaletteQuantizer.config_from_wire(q.wire_params()))
    assert decoder.wire_params() == q.wire_params()
    assert np.array_equal(decoder.dequantize(out.symbols, out.side_info), restored)
    # every grid value of the latent is one of the 255 levels of the half range
    grid = np.rint((restored / np.float32(2 * q.half_range) + np.float32(0.5)) * 255)
    assert grid.min() >= 0 and grid.max() <= 255


@examples(60)
@given(st.integers(1, 256), st.integers(1, 6), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_palette_ranks_are_a_bijection_and_side_info_round_trips(k: int, c: int, h: int, w: int, seed: int) -> None:
    from latentcodec.quantizers.palette import compact_order, decode_palette, encode_palette, indices_to_ranks, ranks_to_indices

    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (k, c)).astype(np.uint8)
    indices = rng.integers(0, k, (h, w)).astype(np.int32)
    ranks = indices_to_ranks(indices, palette)
    assert ranks.min() >= 0 and ranks.max() < k
    assert np.array_equal(palette[ranks_to_indices(ranks, palette)], palette[indices])
    for coding in ("zlib", "compact"):
        p = palette[compact_order(palette)] if coding == "compact" else palette
        side = encode_palette(p, coding)
        back, used = decode_palette(side, coding)
        assert used == len(side) and np.array_equal(back, p)


@examples(60)
@given(st.integers(2, 256), st.booleans(), st.booleans(), st.one_of(st.none(), st.floats(1e-3, 1e4)))
def test_palette_wire_params_round_trip(colors: int, compact: bool, rank: bool, half_range: float | None) -> None:
    from latentcodec.quantizers.palette import PaletteQuantizer

    config = {"colors": colors, "palette_coding": "compact" if compact else "zlib", "symbols": "rank" if rank else "index"}
    if half_range is not None:
        config["half_range"] = half_range
    q = PaletteQuantizer(**config)
    params = q.wire_params()
    back = PaletteQuantizer.config_from_wire(params)
    assert back["colors"] == colors and back["palette_coding"] == config["palette_coding"] and back["symbols"] == config["symbols"]
    assert as_float32(back.get("half_range", q.half_range)) == q.half_range
    assert PaletteQuantizer.from_config(back).wire_params() == params


@examples(200)
@given(st.binary(max_size=12))
def test_palette_wire_params_from_any_bytes(params: bytes) -> None:
    from latentcodec.quantizers.palette import PaletteQuantizer

    try:
        config = PaletteQuantizer.config_from_wire(params)
        q = PaletteQuantizer.from_config(config)
    except LatentCodecError:
        return
    assert q.wire_params() == params  # a params string that builds is the canonical one


@examples(200)
@given(st.binary(max_size=48), st.sampled_from(["zlib", "compact"]), st.integers(1, 5), st.integers(1, 5))
def test_palette_dequantize_of_any_side_info_and_symbols(side: bytes, coding: str, h: int, w: int) -> None:
    from latentcodec.quantizers.palette import PaletteQuantizer

    for symbols in ("index", "rank"):
        q = PaletteQuantizer(colors=256, palette_coding=coding, symbols=symbols)
        s = np.random.default_rng(len(side)).integers(-1, 5, (1, h, w)).astype(np.int32)
        try:
            latent = q.dequantize(s, side)
        except CorruptStreamError:
            continue
        assert latent.dtype == np.float32 and latent.shape[1:] == (h, w) and np.isfinite(latent).all()


# --- container ---------------------------------------------------------------------------
names = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,31}\Z")
param_lengths = st.sampled_from([0, 1, 4, 14, 15, 16, 142, 143, 4095, 4096])


@st.composite
def stage_records(draw, kind):  # type: ignore[no-untyped-def]
    registered = sorted(WIRE_IDS[kind])
    name = draw(st.one_of(st.sampled_from(registered), names))
    n = draw(st.one_of(param_lengths, st.integers(0, 64)))
    params = draw(st.binary(min_size=n, max_size=n)) if n <= 64 else bytes(np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8))
    return StageRecord(kind, name, draw(st.integers(0, 15)), params)


@st.composite
def streams(draw):  # type: ignore[no-untyped-def]
    width = draw(st.one_of(st.integers(1, 64), st.integers(1, 65535)))
    height = draw(st.one_of(st.integers(1, 64), st.integers(1, min(65535, (1 << 28) // width))))
    chain = tuple(draw(stage_records(kind)) for kind in ("transform", "quantizer", "entropy_coder", "refiner"))
    return Stream(
        width=width,
        height=height,
        latent_channels=draw(st.integers(1, 32)),
        downsampling_factor=1 << draw(st.integers(0, 7)),
        chain=chain,
        fingerprint=draw(st.binary(min_size=4, max_size=4)),
        side_info=draw(st.one_of(st.binary(max_size=200), st.just(b""))),
        payload=draw(st.binary(max_size=300)),
    )


@examples(150)
@given(streams())
def test_container_round_trip(stream: Stream) -> None:
    data = bitstream.write(stream)
    back = bitstream.read(data)
    assert back == stream
    assert back.total_bytes == len(data)
    f = stream.downsampling_factor
    assert back.latent_shape == (stream.latent_channels, -(-stream.height // f), -(-stream.width // f))
    assert back.overhead_bytes == len(data) - len(stream.side_info) - len(stream.payload)


@examples(40)
@given(streams())
def test_container_truncations_are_refused(stream: Stream) -> None:
    data = bitstream.write(stream)
    step = max(1, len(data) // 64)
    for n in list(range(0, len(data), step)) + [len(data) - 1]:
        with pytest.raises(LatentCodecError) as info:
            bitstream.read(data[:n])
        assert isinstance(info.value, (TruncatedStreamError, CorruptStreamError)) or n >= 3


@examples(300)
@given(st.binary(max_size=80))
def test_container_reads_any_bytes_with_a_valid_crc(body: bytes) -> None:
    """With the CRC right, every header defect is still a LatentCodecError."""
    import zlib

    data = b"\x8cLC\x01" + body
    data += zlib.crc32(data).to_bytes(4, "little")
    try:
        stream = bitstream.read(data)
    except LatentCodecError:
        return
    assert bitstream.write(stream)[:-4] != b"" and stream.total_bytes == len(data)


@examples(300)
@given(st.integers(0, (1 << 35) - 1))
def test_varint_round_trip(value: int) -> None:
    data = bitstream.write_varint(value)
    assert len(data) <= 5
    r = bitstream.Reader(data + b"tail")
    assert r.varint("v", (1 << 35) - 1) == value and r.pos == len(data)


@examples(200)
@given(st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_float_params_from_the_wire(value: float) -> None:
    """Any 4 param bytes give the step / half range or a CorruptStreamError (or a
    StageConfigError for a finite value outside the configurable range)."""
    for name in ("uniform", "uint8"):
        cls = registry.load("quantizer", name)
        params = struct.pack("<f", value)
        try:
            q = cls.from_config(cls.config_from_wire(params))
        except LatentCodecError:
            continue
        assert q.wire_params() in (params, b"")
