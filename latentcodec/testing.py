"""Contract tests every stage must pass: subclass one, say how to build your stage, run pytest.

::

    from latentcodec.testing import QuantizerContract

    class TestMyQuantizer(QuantizerContract):
        def make_stage(self):
            return MyQuantizer(step=0.3)

Pytest then runs every ``test_*`` method of the contract against that stage.  The
checks are what the codec relies on: the config round trip (``from_config`` /
``get_config``, ``wire_params`` / ``config_from_wire``), that the stage survives the
container, determinism, that quantize -> dequantize is idempotent on its own outputs,
that entropy decode(encode(x)) is x on random and adversarial symbols, and that bad
input raises a :class:`~latentcodec.errors.LatentCodecError` subclass, never a bare
``ValueError`` or ``IndexError``.  Class attributes tune the inputs (``latent_scale``,
``image_size``, ...).  ``tests/test_contracts.py`` runs these against every installed
stage; plugin distributions run them in their own tests.

This module needs pytest (the ``test`` extra); nothing else in latentcodec imports it.
It stays one module (a little over 400 lines) on purpose: a plugin author reads the
whole contract, every kind of stage, in one place.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
import torch

from . import bitstream, registry
from .bitstream import StageRecord, Stream
from .errors import CorruptStreamError, LatentCodecError, StageConfigError, StageInputError
from .stages import STAGE_BASES, EntropyCoder, Quantized, Quantizer, RefineContext, Refiner, Stage, Transform

__all__ = [
    "EntropyCoderContract",
    "QuantizerContract",
    "RefinerContract",
    "StageContract",
    "ToyTransform",
    "TransformContract",
    "adversarial_symbols",
]

#: Placeholder names for the other three slots when a stage is put through the container.
_FILLER = {"transform": "taesd", "quantizer": "uniform", "entropy_coder": "ans", "refiner": "vae"}
_GARBAGE_PARAMS = (b"\x00", b"\xff", b"\xff" * 3, b"\x7f\xff\xff\xff\xff", bytes(range(17)), b"\xff" * 64)


class StageContract:
    """Checks common to every stage kind.  Subclasses implement :meth:`make_stage`."""

    #: Set False for a stage that is tested before its distribution is installed.
    expect_registered: ClassVar[bool] = True

    def make_stage(self) -> Stage:
        """Build the stage under test (called once per test class)."""
        raise NotImplementedError("a contract test class must implement make_stage()")

    @pytest.fixture(scope="class")
    @classmethod
    def stage(cls) -> Stage:
        """The stage under test, built once per class (models load once)."""
        return cls().make_stage()

    # --- identity -------------------------------------------------------------------
    def test_name_version_and_kind(self, stage: Stage) -> None:
        base = STAGE_BASES[stage.kind]
        assert isinstance(stage, base), f"{stage!r} is not a {base.__name__}"
        assert isinstance(stage.version, int) and 0 <= stage.version <= 15, "version must fit the stream's nibble"
        assert bitstream._NAME_RE.match(stage.name.encode()), f"name {stage.name!r} cannot be written in a stream"

    def test_registered_under_its_name(self, stage: Stage) -> None:
        if not self.expect_registered:
            pytest.skip("expect_registered is False")
        assert stage.name in registry.entries(stage.kind), (
            f"{stage.kind} {stage.name!r} has no entry point in group {registry.GROUPS[stage.kind]!r}"
        )
        assert registry.load(stage.kind, stage.name) is type(stage)

    # --- config ---------------------------------------------------------------------
    def test_config_round_trip(self, stage: Stage) -> None:
        config = stage.get_config()
        assert set(config) == set(type(stage).config_keys())
        rebuilt = type(stage).from_config(config)
        assert rebuilt.get_config() == config
        assert rebuilt.wire_params() == stage.wire_params()
        assert repr(rebuilt) == repr(stage)

    def test_unknown_option_is_a_config_error(self, stage: Stage) -> None:
        with pytest.raises(StageConfigError):
            type(stage).from_config({**stage.get_config(), "no_such_option_xyz": 1})

    def test_wire_round_trip(self, stage: Stage) -> None:
        params = stage.wire_params()
        assert isinstance(params, bytes) and len(params) <= bitstream.MAX_PARAM_BYTES
        config = type(stage).config_from_wire(params)
        assert isinstance(config, dict)
        runtime = {k: v for k, v in stage.get_config().items() if k in stage.runtime_options}
        rebuilt = type(stage).from_config({**runtime, **config})
        assert rebuilt.wire_params() == params, "config_from_wire(wire_params()) must rebuild the same wire params"
        for key in set(stage.get_config()) - stage.runtime_options:
            assert rebuilt.get_config()[key] == stage.get_config()[key], f"option {key!r} is lost on the wire"

    def test_bad_wire_params_raise_stream_errors(self, stage: Stage) -> None:
        """Garbage parameter bytes give a LatentCodecError or a config that builds; nothing else."""
        for garbage in _GARBAGE_PARAMS:
            try:
                config = type(stage).config_from_wire(garbage)
                runtime = {k: v for k, v in stage.get_config().items() if k in stage.runtime_options}
                type(stage).from_config({**runtime, **config})
            except LatentCodecError:
                continue

    def test_survives_the_container(self, stage: Stage) -> None:
        chain = tuple(
            StageRecord(kind, stage.name if kind == stage.kind else _FILLER[kind], stage.version if kind == stage.kind else 1,
                        stage.wire_params() if kind == stage.kind else b"")
            for kind in ("transform", "quantizer", "entropy_coder", "refiner")
        )
        data = bitstream.write(Stream(16, 16, 4, 8, chain, b"\x00" * 4, b"", b"\x01"))
        record = bitstream.read(data).stage(stage.kind)
        assert (record.name, record.version, record.params) == (stage.name, stage.version, stage.wire_params())


# --- quantizers -------------------------------------------------------------------------
class QuantizerContract(StageContract):
    """Quantizer checks.  ``latent_scale``: std of the random test latents."""

    latent_scale: ClassVar[float] = 1.0
    latent_shape: ClassVar[tuple[int, int, int]] = (4, 12, 10)

    def latents(self) -> list[np.ndarray]:
        rng = np.random.default_rng(1234)
        c, h, w = self.latent_shape
        s = self.latent_scale
        return [
            (rng.standard_normal((c, h, w)) * s).astype(np.float32),
            (rng.laplace(size=(c, h, w)) * s * 3).astype(np.float32),  # heavy tails, clipped by some quantizers
            np.zeros((c, h, w), np.float32),
            np.full((c, 1, 1), 0.3 * s, np.float32),
        ]

    def test_quantize_output_types(self, stage: Quantizer) -> None:
        for latent in self.latents():
            q = stage.quantize(latent)
            assert isinstance(q, Quantized) and isinstance(q.side_info, bytes)
            shape_of = getattr(stage, "symbol_shape", lambda shape: tuple(shape))  # a palette: one per pixel
            assert q.symbols.shape == tuple(shape_of(latent.shape)), "symbols must have symbol_shape(latent.shape)"
            assert np.issubdtype(q.symbols.dtype, np.integer)
            assert q.symbols.min(initial=0) >= np.iinfo(np.int32).min and q.symbols.max(initial=0) <= np.iinfo(np.int32).max
            restored = stage.dequantize(q.symbols, q.side_info)
            assert restored.shape == latent.shape and restored.dtype == np.float32
            assert np.isfinite(restored).all()

    def test_idempotent_on_its_own_outputs(self, stage: Quantizer) -> None:
        """quantize(dequantize(quantize(x))) == quantize(x), and dequantize agrees too."""
        for latent in self.latents():
            q = stage.quantize(latent)
            restored = stage.dequantize(q.symbols, q.side_info)
            again = stage.quantize(restored)
            assert np.array_equal(again.symbols, q.symbols), "re-quantizing a reconstruction changed its symbols"
            assert np.array_equal(stage.dequantize(again.symbols, again.side_info), restored)

    def test_reduces_error_against_zero(self, stage: Quantizer) -> None:
        """The reconstruction is closer to the latent than all zeros is (it carries information)."""
        latent = self.latents()[0]
        q = stage.quantize(latent)
        err = float(np.mean((stage.dequantize(q.symbols, q.side_info) - latent) ** 2))
        assert err < float(np.mean(latent**2))

    def test_deterministic_and_decodable_from_the_wire(self, stage: Quantizer) -> None:
        decoder = type(stage).from_config(type(stage).config_from_wire(stage.wire_params()))
        assert isinstance(decoder, Quantizer)
        for latent in self.latents():
            a, b = stage.quantize(latent), stage.quantize(latent.copy())
            assert np.array_equal(a.symbols, b.symbols) and a.side_info == b.side_info
            assert np.array_equal(decoder.dequantize(a.symbols, a.side_info), stage.dequantize(a.symbols, a.side_info))

    def test_residual_std(self, stage: Quantizer) -> None:
        q = stage.quantize(self.latents()[0])
        std = stage.residual_std(q.side_info)
        assert std is None or (isinstance(std, float) and math.isfinite(std) and std >= 0)

    def test_non_finite_latent_is_an_input_error(self, stage: Quantizer) -> None:
        for bad in (np.nan, np.inf, -np.inf):
            latent = self.latents()[0].copy()
            latent[0, 0, 0] = bad
            with pytest.raises(StageInputError):
                stage.quantize(latent)


# --- entropy coders ---------------------------------------------------------------------
def adversarial_symbols() -> dict[str, np.ndarray]:
    """Symbol arrays that break careless coders: degenerate, sparse, wide, strided."""
    rng = np.random.default_rng(99)
    outlier = np.zeros((4, 16, 16), np.int32)
    outlier[2, 7, 3] = 1000
    wide = rng.integers(-300, 301, size=(2, 32, 32)).astype(np.int32)
    return {
        "zeros": np.zeros((4, 8, 8), np.int32),
        "single": np.array([[[7]]], np.int32),
        "one-per-channel": np.array([[[-3]], [[0]], [[5]], [[1 << 20]]], np.int32),
        "constant-channels": np.stack([np.full((6, 5), v, np.int32) for v in (-2, 0, 9, -40)]),
        "outlier": outlier,
        "alternating": (np.indices((3, 9, 11)).sum(0) % 2 * 2 - 1).astype(np.int32),
        "wide": wide,
        "large-magnitude": rng.choice(np.array([-(1 << 20), 0, 1 << 20]), size=(2, 8, 8)).astype(np.int32),
        "strided": rng.integers(-5, 6, size=(8, 12, 4)).astype(np.int32).transpose(0, 2, 1)[::2],
        "int64-dtype": rng.integers(-9, 10, size=(4, 6, 6)).astype(np.int64),
        "one-channel-varies": np.concatenate([np.zeros((3, 8, 8), np.int32), rng.integers(-4, 5, (1, 8, 8)).astype(np.int32)]),
    }


class EntropyCoderContract(StageContract):
    """Entropy coder checks.

    Every array in :func:`adversarial_symbols` must round-trip exactly, except the
    names in ``may_reject``, which may instead raise :class:`StageInputError` (a coder
    with a limited alphabet, say).
    """

    may_reject: ClassVar[frozenset[str]] = frozenset()
    #: Channels a coder's model is built for (learned priors): every test array is
    #: tiled or cut along axis 0 to this many channels. None: any count.
    channels: ClassVar[int | None] = None

    def fit(self, symbols: np.ndarray) -> np.ndarray:
        if self.channels is None or symbols.shape[0] == self.channels:
            return symbols
        reps = -(-self.channels // symbols.shape[0])
        return np.ascontiguousarray(np.concatenate([symbols] * reps)[: self.channels])

    def random_symbols(self) -> list[np.ndarray]:
        rng = np.random.default_rng(7)
        return [
            np.rint(rng.standard_normal((4, 16, 24)) * 2).astype(np.int32),
            np.rint(rng.laplace(size=(4, 32, 32)) * 6).astype(np.int32),
            rng.integers(-1, 2, size=(4, 64, 48)).astype(np.int32),
        ]

    def _round_trip(self, stage: EntropyCoder, symbols: np.ndarray) -> bytes:
        data = stage.encode(symbols)
        assert isinstance(data, bytes)
        decoded = stage.decode(data, tuple(symbols.shape))
        assert decoded.shape == symbols.shape and np.issubdtype(decoded.dtype, np.integer)
        assert np.array_equal(decoded, symbols), "decode(encode(x)) != x"
        return data

    def test_random_symbols_round_trip(self, stage: EntropyCoder) -> None:
        for symbols in self.random_symbols():
            self._round_trip(stage, symbols)

    def test_adversarial_symbols_round_trip(self, stage: EntropyCoder) -> None:
        for label, symbols in adversarial_symbols().items():
            symbols = self.fit(symbols)
            if label in self.may_reject:
                try:
                    self._round_trip(stage, symbols)
                except StageInputError:
                    pass
            else:
                try:
                    self._round_trip(stage, symbols)
                except Exception as exc:
                    raise AssertionError(f"adversarial case {label!r}: {type(exc).__name__}: {exc}") from exc

    def test_deterministic_and_decodable_from_the_wire(self, stage: EntropyCoder) -> None:
        decoder = type(stage).from_config(type(stage).config_from_wire(stage.wire_params()))
        assert isinstance(decoder, EntropyCoder)
        for symbols in self.random_symbols():
            data = stage.encode(symbols)
            assert stage.encode(symbols.copy()) == data, "encoding is not deterministic"
            assert np.array_equal(decoder.decode(data, symbols.shape), symbols)

    def test_damaged_payload_gives_stream_errors(self, stage: EntropyCoder) -> None:
        """Truncated or bit-flipped data: a CorruptStreamError or some array, never a crash."""
        symbols = self.random_symbols()[1]
        data = stage.encode(symbols)
        damaged = [b"", data[:1], data[: len(data) // 2], data[:-1], data + b"\x00\x01"]
        for i in range(0, len(data), max(1, len(data) // 8)):
            damaged.append(data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :])
        for blob in damaged:
            try:
                out = stage.decode(blob, symbols.shape)
            except CorruptStreamError:
                continue
            assert out.shape == symbols.shape, "a decode that does not raise must return the promised shape"

    def test_bad_symbols_are_input_errors(self, stage: EntropyCoder) -> None:
        for bad in (np.zeros((2, 3, 3), np.float32) + 0.5, np.zeros((0, 4, 4), np.int32)):
            with pytest.raises(StageInputError):
                stage.encode(bad)


# --- transforms -------------------------------------------------------------------------
def smooth_image(height: int, width: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A deterministic natural-ish test image in [0, 1]: low-frequency colour fields."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, height // 8), max(2, width // 8), generator=g)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)


class TransformContract(StageContract):
    """Transform checks (they run the model: keep ``image_size`` small)."""

    image_size: ClassVar[tuple[int, int]] = (40, 56)  # (H, W); deliberately not a multiple of 16

    def test_layout(self, stage: Transform) -> None:
        assert isinstance(stage.latent_channels, int) and 1 <= stage.latent_channels <= bitstream.MAX_LATENT_CHANNELS
        f = stage.downsampling_factor
        assert isinstance(f, int) and f >= 1 and f & (f - 1) == 0, "downsampling factor must be a power of two"

    def test_analysis_synthesis_shapes_and_range(self, stage: Transform) -> None:
        h, w = self.image_size
        f = stage.downsampling_factor
        for hh, ww in ((h, w), (h + 3, w - 5)):  # the second needs padding
            z = stage.analysis(smooth_image(hh, ww))
            assert z.dtype == torch.float32 and z.device.type == "cpu"
            assert tuple(z.shape) == (1, stage.latent_channels, -(-hh // f), -(-ww // f))
            assert torch.isfinite(z).all()
            x = stage.synthesis(z)
            assert x.dtype == torch.float32 and x.device.type == "cpu"
            assert tuple(x.shape) == (1, 3, z.shape[-2] * f, z.shape[-1] * f)
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0

    def test_deterministic_and_batch_consistent(self, stage: Transform) -> None:
        h, w = self.image_size
        batch = smooth_image(h, w, batch=2, seed=3)
        z = stage.analysis(batch)
        assert torch.equal(z, stage.analysis(batch.clone())), "analysis is not deterministic"
        single = stage.analysis(batch[1:2])
        assert torch.allclose(z[1:2], single, atol=1e-4, rtol=1e-4), "a batch must encode like its images one by one"
        assert torch.equal(stage.synthesis(z), stage.synthesis(z.clone())), "synthesis is not deterministic"

    def test_fingerprint(self, stage: Transform) -> None:
        fp = stage.fingerprint()
        assert isinstance(fp, bytes) and len(fp) == bitstream.FINGERPRINT_BYTES
        assert fp == stage.fingerprint()
        assert type(stage).from_config(stage.get_config()).fingerprint() == fp, "same weights, same fingerprint"

    def test_bad_input_is_an_input_error(self, stage: Transform) -> None:
        h, w = self.image_size
        for bad in (torch.zeros(1, 1, h, w), torch.zeros(3, h, w), torch.zeros(1, 4, h, w)):
            with pytest.raises(StageInputError):
                stage.analysis(bad)
        with pytest.raises(StageInputError):
            stage.synthesis(torch.zeros(1, stage.latent_channels + 1, 4, 4))


# --- refiners ---------------------------------------------------------------------------
class ToyTransform(Transform):
    """A weight-free SD-shaped transform (4 channels at 1/8) for testing other stages.

    Not registered: it exists so quantizers, coders and refiners can be exercised
    without a model.
    """

    name: ClassVar[str] = "toy"
    version: ClassVar[int] = 1
    latent_space: ClassVar[str] = "sd"

    def __init__(self) -> None:
        pass

    latent_channels = 4  # type: ignore[assignment]
    downsampling_factor = 8  # type: ignore[assignment]

    def analysis(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise StageInputError(f"toy: expected (B, 3, H, W), got {tuple(image.shape)}")
        h, w = image.shape[-2:]
        x = torch.nn.functional.pad(image.float() * 2 - 1, (0, (-w) % 8, 0, (-h) % 8), mode="replicate")
        pooled = torch.nn.functional.avg_pool2d(x, 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], 1)

    def synthesis(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() != 4 or latent.shape[1] != 4:
            raise StageInputError(f"toy: expected (B, 4, h, w), got {tuple(latent.shape)}")
        x = torch.nn.functional.interpolate(latent[:, :3].float(), scale_factor=8, mode="nearest")
        return ((x + 1) / 2).clamp(0, 1)

    def fingerprint(self) -> bytes:
        return b"toy\x00"


class RefinerContract(StageContract):
    """Refiner checks, run with :meth:`make_transform` (a :class:`ToyTransform` by default)."""

    image_size: ClassVar[tuple[int, int]] = (44, 60)  # (width, height), as in RefineContext

    def make_transform(self) -> Transform:
        return ToyTransform()

    def _inputs(self) -> tuple[torch.Tensor, Transform, RefineContext]:
        from .quantizers.uniform import UniformQuantizer

        transform = self.make_transform()
        w, h = self.image_size
        latent = transform.analysis(smooth_image(h, w, seed=5))
        quantizer = UniformQuantizer(step=0.25)
        q = quantizer.quantize(latent[0].numpy())
        restored = torch.from_numpy(quantizer.dequantize(q.symbols, q.side_info))[None]
        return restored, transform, RefineContext(image_size=(w, h), quantizer=quantizer, side_info=q.side_info)

    def test_refine_shape_and_range(self, stage: Refiner) -> None:
        latent, transform, context = self._inputs()
        w, h = self.image_size
        image = stage.refine(latent, transform, context)
        assert image.dtype == torch.float32 and image.device.type == "cpu"
        assert tuple(image.shape) == (1, 3, h, w)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0

    def test_refine_is_deterministic(self, stage: Refiner) -> None:
        latent, transform, context = self._inputs()
        assert torch.equal(stage.refine(latent, transform, context), stage.refine(latent.clone(), transform, context))


CONTRACTS: dict[str, type[StageContract]] = {
    "transform": TransformContract,
    "quantizer": QuantizerContract,
    "entropy_coder": EntropyCoderContract,
    "refiner": RefinerContract,
}


def contract_for(kind: str) -> type[StageContract]:
    """The contract class for a stage kind (``"quantizer"`` -> :class:`QuantizerContract`)."""
    return CONTRACTS[kind]

