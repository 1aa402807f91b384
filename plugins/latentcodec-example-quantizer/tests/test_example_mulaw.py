"""The example plugin's own tests: the shared contract suite plus what is special to mu-law."""

from __future__ import annotations

import numpy as np
import pytest

from latentcodec.errors import CorruptStreamError, StageConfigError
from latentcodec.testing import QuantizerContract
from latentcodec_example_quantizer import MuLawQuantizer


class TestMuLawContract(QuantizerContract):
    """Every check latentcodec runs on its own quantizers, with the default config..."""

    def make_stage(self) -> MuLawQuantizer:
        return MuLawQuantizer()


class TestMuLawStrongCompandingContract(QuantizerContract):
    """...and with a non-default one, so the 8 wire bytes are exercised too."""

    latent_scale = 3.0

    def make_stage(self) -> MuLawQuantizer:
        return MuLawQuantizer(step=0.3, mu=5.0)


def test_mu_zero_is_uniform_quantization() -> None:
    latent = np.random.default_rng(0).standard_normal((4, 8, 8)).astype(np.float32)
    q = MuLawQuantizer(step=0.5, mu=0.0)
    assert np.array_equal(q.quantize(latent).symbols, np.rint(latent / 0.5).astype(np.int32))


def test_steps_grow_with_magnitude() -> None:
    """The point of companding: reconstruction levels are dense near zero, sparse in the tails."""
    q = MuLawQuantizer(step=0.25, mu=2.0)
    levels = q.dequantize(np.arange(0, 20, dtype=np.int32))
    gaps = np.diff(levels)
    assert np.all(np.diff(gaps) > 0)
    assert gaps[0] < 1.5 * 0.25  # about the step near zero (c'(0) = 1)...
    assert gaps[-1] > 10 * gaps[0]  # ...and far coarser in the tails


def test_wire_params_are_empty_for_defaults_and_exact_otherwise() -> None:
    assert MuLawQuantizer().wire_params() == b""
    q = MuLawQuantizer(step=0.3, mu=5.0)
    assert len(q.wire_params()) == 8
    assert MuLawQuantizer(**MuLawQuantizer.config_from_wire(q.wire_params())).get_config() == q.get_config()


@pytest.mark.parametrize("params", [b"\x00" * 4, b"\x00" * 8, b"\x00\x00\xc0\x7f" * 2])
def test_bad_wire_params(params: bytes) -> None:
    with pytest.raises(CorruptStreamError):
        MuLawQuantizer.config_from_wire(params)


@pytest.mark.parametrize("config", [{"step": 0}, {"step": "x"}, {"mu": -1}, {"mu": float("nan")}])
def test_bad_config(config: dict) -> None:
    with pytest.raises(StageConfigError):
        MuLawQuantizer.from_config(config)


def test_huge_symbols_from_a_damaged_stream_stay_finite() -> None:
    q = MuLawQuantizer(step=0.5, mu=5.0)
    out = q.dequantize(np.array([[[2**31 - 1, -(2**31)]]], dtype=np.int32))
    assert np.isfinite(out).all()


def test_round_trip_through_a_codec() -> None:
    """The plugin works in a real chain, found through its entry point."""
    from latentcodec import Codec, registry
    from latentcodec.testing import ToyTransform, smooth_image

    assert registry.load("quantizer", "mulaw") is MuLawQuantizer
    codec = Codec(ToyTransform(), registry.create("quantizer", "mulaw", step=0.1, mu=2.0), registry.create("entropy_coder", "zlib"))
    image = smooth_image(48, 64)
    data = codec.compress(image)
    decoded = codec.decompress(data, as_tensor=True)
    reference = ToyTransform().synthesis(ToyTransform().analysis(image))
    assert decoded.shape == (1, 3, 48, 64)
    assert float((decoded - reference).abs().max()) < 0.1
    assert b"mulaw" in data  # written by name: no wire id registration needed
