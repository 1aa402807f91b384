"""Decoder defects found by a second decoder written from SPEC.md, and limits checked
before allocating (issue #16).  Each test builds the damaged stream by hand and also
checks the valid case next to it, so the fix refuses exactly what it should."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from latentcodec import bitstream
from latentcodec.bitstream import StageRecord, Stream, write_varint
from latentcodec.decoding import decode_latent
from latentcodec.entropy.ans import ANSCoder
from latentcodec.entropy.hyperprior import ANSHyperpriorCoder
from latentcodec.entropy.hyperprior.fixed_point import ACT_LIMIT, conv_int
from latentcodec.entropy.hyperprior.model import Z_LIMIT
from latentcodec.entropy.priors import encode_parts
from latentcodec.entropy.rans import ReverseEncoder, categorical
from latentcodec.entropy.tables import read_table, write_table
from latentcodec.entropy.zlib_coder import ZlibCoder
from latentcodec.errors import CorruptStreamError, LatentCodecError, LimitExceededError
from latentcodec.quantizers.palette import PaletteQuantizer

INT32_MAX = (1 << 31) - 1


# --- a. ans: a table whose values pass int32 --------------------------------------------
def _ans_payload(lo: int, symbols: list[int], k: int = 4, bits: int = 12) -> bytes:
    freqs = np.full(k, (1 << bits) // k)
    enc = ReverseEncoder()
    enc.add(np.array(symbols), categorical(freqs, bits))
    return write_table(lo, freqs) + enc.finish()


def test_ans_table_ending_at_int32_max_decodes() -> None:
    lo = INT32_MAX - 3
    out = ANSCoder().decode(_ans_payload(lo, [3, 0, 1, 2]), (1, 2, 2))
    assert out.ravel().tolist() == [INT32_MAX, lo, lo + 1, lo + 2]


@pytest.mark.parametrize("lo", [INT32_MAX - 2, INT32_MAX])
def test_ans_table_beyond_int32_is_corrupt(lo: int) -> None:
    # before the fix the symbol lo + 3 wrapped to a negative int32 (-2147483648 for lo = 2^31 - 3)
    with pytest.raises(CorruptStreamError, match="int32"):
        ANSCoder().decode(_ans_payload(lo, [0, 0, 1, 2]), (1, 2, 2))


def test_ans_table_starting_at_int32_min_decodes() -> None:
    lo = -(1 << 31)
    out = ANSCoder().decode(_ans_payload(lo, [0, 3, 1, 2]), (1, 4))
    assert out.ravel().tolist() == [lo, lo + 3, lo + 1, lo + 2]


# --- b. palette: its channel count against the header's C -------------------------------
def _palette_stream(palette: np.ndarray, header_channels: int, coding: str = "zlib") -> tuple[bytes, PaletteQuantizer]:
    from latentcodec.quantizers.palette import encode_palette

    q = PaletteQuantizer(colors=len(palette), palette_coding=coding)
    symbols = np.zeros((1, 2, 3), np.int32)
    symbols[0, 1, 2] = len(palette) - 1
    chain = (
        StageRecord("transform", "taesd", 1),
        StageRecord("quantizer", "palette", 1, q.wire_params()),
        StageRecord("entropy_coder", "zlib", 1),
        StageRecord("refiner", "vae", 1),
    )
    stream = Stream(24, 16, header_channels, 8, chain, b"\x00" * 4, encode_palette(palette, coding), ZlibCoder().encode(symbols))
    return bitstream.write(stream), q


@pytest.mark.parametrize("coding", ["zlib", "compact"])
def test_palette_with_more_channels_than_a_latent_is_corrupt(coding: str) -> None:
    palette = np.tile(np.arange(33, dtype=np.uint8), (2, 1))
    palette[1] += 1
    data, q = _palette_stream(palette, 4, coding)
    stream = bitstream.read(data)
    with pytest.raises(CorruptStreamError, match="channels"):
        q.dequantize(np.zeros((1, 2, 3), np.int32), stream.side_info)


def test_palette_matching_the_header_decodes() -> None:
    palette = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    latent, _ = decode_latent(bitstream.read(_palette_stream(palette, 3)[0]))
    assert latent.shape == (3, 2, 3)


@pytest.mark.xfail(reason="decode_latent (decoding.py, not a quantizer's business) does not yet compare the latent's shape with the header", strict=False)
def test_palette_channel_count_other_than_the_headers_is_corrupt() -> None:
    palette = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    with pytest.raises(CorruptStreamError):
        decode_latent(bitstream.read(_palette_stream(palette, 4)[0]))


# --- c. zlib: bytes after the zlib stream ------------------------------------------------
def test_zlib_coder_rejects_bytes_after_its_stream() -> None:
    symbols = np.arange(-5, 19, dtype=np.int32).reshape(2, 3, 4)
    data = ZlibCoder().encode(symbols)
    assert np.array_equal(ZlibCoder().decode(data, symbols.shape), symbols)
    for tail in (b"\x00", b"\x01\x02\x03"):
        with pytest.raises(CorruptStreamError, match="after the end"):
            ZlibCoder().decode(data + tail, symbols.shape)


# --- d. ans-hyperprior: the hyper-latent's range and the exactness of the integer nets ----
def _hyperprior_payload(coder: ANSHyperpriorCoder, y: np.ndarray, z: np.ndarray) -> bytes:
    return encode_parts(coder._parts_with(y.astype(np.int64), z))


@pytest.fixture(scope="module")
def hyperprior() -> ANSHyperpriorCoder:
    return ANSHyperpriorCoder()


def test_hyperprior_z_at_the_encoders_clamp_decodes(hyperprior: ANSHyperpriorCoder) -> None:
    y = np.zeros((4, 8, 12), np.int32)
    y[1, 3, 4] = 7
    z = np.zeros(hyperprior.model.z_shape(y.shape), np.int64)
    z[0, 0, 0], z[3, 1, 2] = Z_LIMIT, -Z_LIMIT
    assert np.array_equal(hyperprior.decode(_hyperprior_payload(hyperprior, y, z), y.shape), y)


@pytest.mark.parametrize("value", [Z_LIMIT + 1, -(Z_LIMIT + 1), 1 << 30])
def test_hyperprior_z_beyond_the_clamp_is_corrupt(hyperprior: ANSHyperpriorCoder, value: int) -> None:
    y = np.zeros((4, 8, 12), np.int32)
    z = np.zeros(hyperprior.model.z_shape(y.shape), np.int64)
    z[2, 1, 1] = value  # an escape carries it; the encoder never writes it (it clamps to 2^15)
    with pytest.raises(CorruptStreamError, match="hyper-latent"):
        hyperprior.decode(_hyperprior_payload(hyperprior, y, z), y.shape)


def _conv_int64(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The same convolution in exact int64 arithmetic (the bounds keep it below 2^63)."""
    k = w.shape[-1]
    r = k // 2
    xp = np.pad(x.astype(np.int64), ((0, 0), (r, r), (r, r)))
    h, wd = x.shape[1:]
    out = np.zeros((w.shape[0], h, wd), np.int64)
    for u in range(k):
        for v in range(k):
            out += np.einsum("oc,chw->ohw", w[:, :, u, v].astype(np.int64), xp[:, u : u + h, v : v + wd])
    return out + b[:, None, None]


def test_integer_networks_are_exact_at_their_input_bounds(hyperprior: ANSHyperpriorCoder) -> None:
    """SPEC 3.6 / 6.5: with |z| <= 2^15 (first hyper-synthesis layer) and inputs clipped to
    2^24 (every other layer, the context nets), float64 matrix products of the shipped
    networks equal exact integer arithmetic, even for the worst-case inputs (each input at
    its bound, signed like the weight it meets)."""
    m = hyperprior.model
    rng = np.random.default_rng(0)
    layers = [(w, b, Z_LIMIT << 8) if i == 0 else (w, b, ACT_LIMIT) for i, (w, b, *_rest) in enumerate(m.synthesis.layers)]
    assert m.context is not None
    layers += [(w, b, ACT_LIMIT) for net in m.context.nets[:: max(1, len(m.context.nets) // 5)] for (w, b, _s) in net]
    for w, b, bound in layers:
        k = w.shape[-1]
        worst = (np.sign(w[0]) * bound).astype(np.int64)  # (I, k, k): output 0 at the centre sums |w| * bound
        x = rng.choice(np.array([-bound, bound]), size=(w.shape[1], k + 2, k + 2)).astype(np.int64)
        x[:, 1 : 1 + k, 1 : 1 + k] = worst
        assert np.array_equal(conv_int(x, w, b), _conv_int64(x, w, b))
        assert int(np.abs(w).astype(np.int64).sum(axis=(1, 2, 3)).max()) * bound < 1 << 53


# --- e. counts and sizes from the stream are checked before allocating --------------------
def test_table_alphabet_over_the_limit_is_refused_before_allocating() -> None:
    with pytest.raises(LimitExceededError):
        read_table(bitstream.Reader(write_varint(0) + write_varint((1 << 16) + 1)), 12, "t")


def test_tiny_stream_with_a_large_latent_stays_proportional() -> None:
    """A 40-byte ans stream for a 4 x 512 x 512 latent (the largest the 16 MP limit gives at
    f = 8): constant tables decode without words; memory is the output, nothing more."""
    import tracemalloc

    shape = (4, 512, 512)
    payload = b"".join(write_table(v, np.array([4096])) for v in (1, -2, 3, 0))
    tracemalloc.start()
    try:
        out = ANSCoder().decode(payload, shape)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out[:, 0, 0].tolist() == [1, -2, 3, 0]
    assert peak <= 4 * out.size + (1 << 20)


@pytest.mark.parametrize("coder_name", ["ans", "zlib", "ans-binned", "ans-factorized", "ans-hyperprior", "ans-context"])
def test_garbage_payload_for_a_large_shape_is_refused_or_bounded(coder_name: str) -> None:
    """Garbage bytes for 4 x 128 x 128 symbols: a LatentCodecError or some symbols, with
    peak memory (numpy's, traced) proportional to the symbol count."""
    import tracemalloc

    from latentcodec import registry

    coder = registry.create("entropy_coder", coder_name)
    getattr(coder, "model", None) if coder_name == "ans-hyperprior" else getattr(coder, "tables", None)
    shape = (4, 128, 128)
    rng = np.random.default_rng(1)
    payload = bytes(rng.integers(0, 256, 200, dtype=np.uint8))
    tracemalloc.start()
    try:
        try:
            out = coder.decode(payload, shape)
            assert out.shape == shape
        except LatentCodecError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 2048 * int(np.prod(shape)) + (16 << 20), f"{coder_name}: {peak >> 20} MiB for {np.prod(shape)} symbols"


def test_zlib_bomb_is_cut_at_the_expected_size() -> None:
    """A zlib stream that would inflate to 1 GB stops at the symbol count's bytes."""
    bomb = zlib.compress(b"\x00" * (64 << 20), 9) * 16
    with pytest.raises(CorruptStreamError):
        ZlibCoder().decode(b"\x00\x00" + bomb, (1, 8, 8))


# --- found by tests/test_properties.py ------------------------------------------------------
def test_uniform_step_at_the_lower_bound_survives_the_wire() -> None:
    """step=1e-4 is stored as fl32(1e-4) = 9.99999974e-05 < 1e-4: the decoder refused the
    params its own encoder wrote (StageConfigError) until the bounds were compared in f32."""
    from latentcodec.quantizers.uniform import UniformQuantizer

    q = UniformQuantizer(step=1e-4)
    back = UniformQuantizer.from_config(UniformQuantizer.config_from_wire(q.wire_params()))
    assert back.step == q.step
    with pytest.raises(LatentCodecError):
        UniformQuantizer.from_config(UniformQuantizer.config_from_wire(struct.pack("<f", 9.9e-5)))


def test_prior_with_weights_too_large_for_exact_float64_is_refused(hyperprior: ANSHyperpriorCoder) -> None:
    """SPEC 3.6: a layer whose sum |W| * 2^24 reaches 2^53 could round in float64."""
    import dataclasses

    from latentcodec.entropy.hyperprior.model import HyperpriorModel
    from latentcodec.errors import ModelError

    prior = hyperprior.prior_file
    HyperpriorModel(prior)  # the shipped file passes
    w = prior["hs1_w"].astype(np.int64).copy()
    w[0] = 1 << 22  # sum |W| of output 0 = 24 * 9 * 2^22 > 2^29: times 2^24 > 2^53
    bad = dataclasses.replace(prior, arrays={**prior.arrays, "hs1_w": w})
    with pytest.raises(ModelError, match="exact"):
        HyperpriorModel(bad)
