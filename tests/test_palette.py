"""The palette quantizer, the ans-binned coder and the palette presets."""

from __future__ import annotations

import numpy as np
import pytest

from latentcodec import Codec, bitstream
from latentcodec.decoding import decode_latent
from latentcodec.info import describe
from latentcodec.entropy.binned import BinnedANSCoder, bin_start_width, to_bins
from latentcodec.quantizers.palette.side_info import decode_sorted_palette, encode_sorted_palette
from latentcodec.errors import CorruptStreamError, StageConfigError, StageInputError
from latentcodec.quantizers.palette import PaletteQuantizer, indices_to_ranks, ranks_to_indices
from tests.conftest import identity_transform


@pytest.fixture(scope="module")
def latent() -> np.ndarray:
    rng = np.random.default_rng(7)
    smooth = rng.normal(size=(4, 20, 30)).cumsum(axis=2) * 0.3
    return (smooth + rng.normal(size=smooth.shape) * 0.3).astype(np.float32)


def chain(preset: str) -> Codec:
    codec = Codec.from_preset(preset, transform="taesd", model="unused")
    codec.transform = identity_transform()
    return codec


@pytest.mark.parametrize("preset", ["buhlmann-2022", "palette-ans"])
def test_preset_round_trip_and_determinism(preset: str, latent: np.ndarray) -> None:
    codec = chain(preset)
    data = codec.compress_latent(latent, (240, 160))
    assert data == codec.compress_latent(latent.copy(), (240, 160))  # dithering is deterministic
    decoded, q = decode_latent(bitstream.read(data))
    expected = codec.quantizer.dequantize(*_quantized(codec.quantizer, latent))
    assert np.array_equal(decoded, expected)
    # palette-ans has fewer colours (112) and spends them where the decoder is sensitive
    assert np.abs(decoded - latent).mean() < {"buhlmann-2022": 0.2, "palette-ans": 0.3}[preset]
    params = next(s for s in describe(data)["chain"] if s["kind"] == "quantizer")["params"]
    assert params["colors"] == codec.quantizer.colors


def _quantized(q: PaletteQuantizer, latent: np.ndarray) -> tuple[np.ndarray, bytes]:
    out = q.quantize(latent)
    return out.symbols, out.side_info


@pytest.mark.parametrize("dither", ["fs", "ordered", "none"])
def test_rank_coding_changes_labels_not_the_latent(dither: str, latent: np.ndarray) -> None:
    seed = PaletteQuantizer(colors=64, dither=dither)
    ours = PaletteQuantizer(colors=64, dither=dither, symbols="rank", palette_coding="compact")
    a, b = seed.quantize(latent), ours.quantize(latent)
    assert np.array_equal(seed.dequantize(a.symbols, a.side_info), ours.dequantize(b.symbols, b.side_info))
    assert len(b.side_info) < len(a.side_info)  # compact palette code beats zlib


def test_ranks_invert_and_concentrate() -> None:
    rng = np.random.default_rng(1)
    palette = np.unique(rng.integers(0, 255, size=(50, 4)), axis=0).astype(np.uint8)
    indices = rng.integers(0, len(palette), size=(9, 13)).astype(np.int32)
    ranks = indices_to_ranks(indices, palette)
    assert np.array_equal(ranks_to_indices(ranks, palette), indices)
    smooth = np.zeros((9, 13), dtype=np.int32) + 3  # a flat region predicts itself
    assert indices_to_ranks(smooth, palette)[1:, 1:].max() == 0
    with pytest.raises(CorruptStreamError):
        ranks_to_indices(np.full((2, 2), len(palette)), palette)


def test_fewer_distinct_colours_than_asked() -> None:
    flat = np.zeros((4, 6, 6), dtype=np.float32)
    for q in (PaletteQuantizer(), PaletteQuantizer(symbols="rank", palette_coding="compact")):
        out = q.quantize(flat)
        assert np.array_equal(q.dequantize(out.symbols, out.side_info), np.zeros_like(flat) + q.from_grid(q.to_grid(flat)))


def test_wire_params_round_trip() -> None:
    q = PaletteQuantizer(colors=77, symbols="rank", palette_coding="compact", half_range=2.5)
    config = PaletteQuantizer.config_from_wire(q.wire_params())
    assert config == {"colors": 77, "palette_coding": "compact", "symbols": "rank", "half_range": 2.5}
    assert len(PaletteQuantizer().wire_params()) == 2
    for bad in (b"", b"\x10", b"\xff\x40", b"\xff\x08\x00"):
        with pytest.raises(CorruptStreamError):
            PaletteQuantizer.config_from_wire(bad)


@pytest.mark.parametrize(
    "config",
    [{"colors": 1}, {"colors": 257}, {"colors": True}, {"dither": "atkinson"}, {"dither_level": 2.0},
     {"symbols": "bits"}, {"palette_coding": "png"}, {"codebook": "nope"}, {"half_range": 0.0}, {"metric": "l1"}],
)
def test_bad_config(config: dict) -> None:
    with pytest.raises(StageConfigError):
        PaletteQuantizer.from_config(config)


def test_corrupt_side_info(latent: np.ndarray) -> None:
    for q in (PaletteQuantizer(), PaletteQuantizer(symbols="rank", palette_coding="compact")):
        out = q.quantize(latent)
        with pytest.raises(CorruptStreamError):
            q.dequantize(out.symbols, out.side_info[:3])
        with pytest.raises(CorruptStreamError):
            q.dequantize(out.symbols, out.side_info + b"\x00\x01")
    with pytest.raises(StageInputError):
        PaletteQuantizer().quantize(np.full((4, 2, 2), np.nan, dtype=np.float32))


def test_compact_palette_code_edge_cases() -> None:
    for pal in (np.array([[5, 6, 7, 8]]), np.array([[0, 9, 9, 9], [0, 9, 9, 9 + 1]]), np.array([[0, 0, 0, 0], [255, 255, 255, 255]])):
        pal = pal.astype(np.uint8)
        data = encode_sorted_palette(pal)
        back, used = decode_sorted_palette(data, len(pal), 4)
        assert np.array_equal(back, pal) and used == len(data)
    with pytest.raises(StageInputError):
        encode_sorted_palette(np.array([[9, 0], [1, 0]], dtype=np.uint8))


def test_binned_coder() -> None:
    values = np.arange(0, 1 << 24, 4099)
    b, o, w = to_bins(values)
    start, width = bin_start_width(b)
    assert np.array_equal(start + o, values) and np.array_equal(width, w) and (o < w).all()
    coder = BinnedANSCoder()
    for symbols in (np.zeros((1, 3, 5), np.int32), np.array([[[0, 65535, 17, 1 << 23]]], np.int32)):
        assert np.array_equal(coder.decode(coder.encode(symbols), symbols.shape), symbols)
    signed = np.array([[[-5, 3, -70000, 12]]], np.int32)
    assert np.array_equal(coder.decode(coder.encode(signed), signed.shape), signed)
    with pytest.raises(StageInputError):
        coder.encode(np.array([[0, 1 << 25]]))
    data = coder.encode(np.arange(200, dtype=np.int32).reshape(1, 10, 20))
    with pytest.raises(CorruptStreamError):
        coder.decode(data[:-3] + b"\xff\xff\xff\xff\xff\xff", (1, 10, 20))


def test_global_codebook_costs_no_side_info(latent: np.ndarray) -> None:
    from latentcodec.quantizers.codebooks import load_codebook

    q = PaletteQuantizer(colors=64, codebook="taesd-v1", symbols="rank")
    out = q.quantize(latent)
    assert out.side_info == b""
    config = PaletteQuantizer.config_from_wire(q.wire_params())
    assert config["codebook"] == "taesd-v1" and config["colors"] == 64
    decoded = PaletteQuantizer.from_config(config).dequantize(out.symbols, out.side_info)
    assert np.array_equal(decoded, q.dequantize(out.symbols))
    assert load_codebook("taesd-v1", 256).shape == (256, 4)
    with pytest.raises(StageConfigError):
        PaletteQuantizer(colors=100, codebook="taesd-v1")


def test_decoder_metric_lowers_the_weighted_error_and_decodes_as_usual(latent: np.ndarray) -> None:
    """The ``sd-decoder`` metric only steers the encoder: fit and dithering minimise the
    decoder-weighted error, and the stream decodes with the same (metric-free) decoder."""
    from latentcodec.quantizers.palette import SD_DECODER_METRIC

    def weighted_error(q: PaletteQuantizer) -> float:
        out = q.quantize(latent)
        decoded = PaletteQuantizer.from_config(PaletteQuantizer.config_from_wire(q.wire_params())).dequantize(out.symbols, out.side_info)
        e = (decoded - latent).reshape(4, -1)
        return float(np.einsum("cn,cd,dn->", e, SD_DECODER_METRIC, e))

    plain = PaletteQuantizer(colors=24, dither="none", symbols="rank", palette_coding="compact")
    weighted = PaletteQuantizer.from_config({**plain.get_config(), "metric": "sd-decoder"})
    assert weighted.get_config()["metric"] == "sd-decoder" and weighted.wire_params() == plain.wire_params()
    assert weighted_error(weighted) < weighted_error(plain)
    with pytest.raises(StageInputError, match="4-channel"):
        weighted.quantize(latent[:3])


def test_decoder_metric_recovers_a_linear_decoders_sensitivity() -> None:
    """For a decoder that mixes channels linearly (pixels = A @ latent), M is A^T A."""
    import torch

    from latentcodec.training.decoder_metric import decoder_metric

    mix = torch.tensor([[1.0, 0.0, 0.5, -1.0], [0.0, 0.5, 0.0, 0.5], [0.2, 0.0, 1.0, -0.6]])

    class LinearDecoder:
        def synthesis(self, latent: torch.Tensor) -> torch.Tensor:
            return torch.einsum("oc,bchw->bohw", mix, latent)

    latents = [np.random.default_rng(i).normal(size=(4, 80, 90)).astype(np.float32) for i in range(3)]
    measured = decoder_metric(LinearDecoder(), latents, crop=64)
    expected = (mix.T @ mix).double().numpy()
    expected /= np.exp(np.mean(np.log(np.diag(expected))))
    np.testing.assert_allclose(measured, expected, atol=0.06)
    assert np.allclose(measured, measured.T)
