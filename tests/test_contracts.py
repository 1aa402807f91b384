"""The contract suite (latentcodec.testing) against every stage installed when the tests run.

One test class per discovered stage is generated below, so a stage added to any
distribution's entry points is checked without editing this file.  Stages that need
weights get them from ``STAGE_CONFIGS``; the contract checks that need a model a test
machine lacks (refiners other than ``vae`` need SD UNets) are limited to the generic
stage checks (config and wire round trips, container, bad parameters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from latentcodec import registry
from latentcodec.errors import StageInputError
from latentcodec.stages import Quantized, Quantizer, Stage
from latentcodec.testing import (
    EntropyCoderContract,
    QuantizerContract,
    RefinerContract,
    StageContract,
    TransformContract,
)

from .conftest import TAESD_DIR, VAELIGHT_DIR

_TINY_VAE: list[Path] = []


def tiny_sd_vae_dir() -> str:
    """A tiny random ``AutoencoderKL`` (4 latent channels at 1/8), saved once per session."""
    if not _TINY_VAE:
        import tempfile

        from diffusers import AutoencoderKL

        torch.manual_seed(0)
        vae = AutoencoderKL(
            block_out_channels=(8, 8, 8, 8),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=4,
        )
        directory = Path(tempfile.mkdtemp(prefix="lc-contract-vae-"))
        vae.save_pretrained(directory)
        _TINY_VAE.append(directory)
    return str(_TINY_VAE[0])


#: How to build stages that cannot be built from their defaults here (no hub, CPU only).
STAGE_CONFIGS: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("transform", "taesd"): lambda: {"model": str(TAESD_DIR), "device": "cpu"},
    ("transform", "sd-vae"): lambda: {"model": tiny_sd_vae_dir(), "device": "cpu"},
    ("transform", "onnx-vaelight"): lambda: {"model": str(VAELIGHT_DIR), "device": "cpu"},
}
#: Refiners whose ``refine`` runs with the weight-free ToyTransform and no other model.
REFINE_WITH_TOY = {"vae"}
#: Adversarial arrays a coder may refuse with StageInputError: a channel spanning 2**21
#: symbols, far beyond any quantized latent.
CODER_MAY_REJECT = frozenset({"large-magnitude"})
#: Learned priors are trained for TAESD's 4-channel latents; test arrays are fitted to that.
CODER_CHANNELS = {"ans-factorized": 4, "ans-hyperprior": 4}


def _contract(kind: str, name: str) -> type[StageContract]:
    if kind == "quantizer":
        return QuantizerContract
    if kind == "entropy_coder":
        return EntropyCoderContract
    if kind == "refiner":
        return RefinerContract if name in REFINE_WITH_TOY else StageContract
    return TransformContract if (kind, name) in STAGE_CONFIGS else StageContract


def _build(kind: str, name: str) -> Stage:
    config = STAGE_CONFIGS[(kind, name)]() if (kind, name) in STAGE_CONFIGS else {}
    cls = registry.load(kind, name)  # type: ignore[arg-type]
    if "device" in cls.config_keys():
        config.setdefault("device", "cpu")
    return cls.from_config(config)


for _kind in registry.GROUPS:
    for _name in registry.names(_kind):  # type: ignore[arg-type]
        _base = _contract(_kind, _name)
        _cls_name = "TestContract_" + "".join(ch if ch.isalnum() else "_" for ch in f"{_kind}_{_name}")
        globals()[_cls_name] = type(
            _cls_name,
            (_base,),
            {
                "make_stage": (lambda self, k=_kind, n=_name: _build(k, n)),
                "may_reject": CODER_MAY_REJECT,
                "channels": CODER_CHANNELS.get(_name),
                "__doc__": f"The {_base.__name__} on {_kind} {_name!r}.",
            },
        )


def test_every_builtin_stage_is_covered() -> None:
    """The generated classes include the built-ins with the kind-specific contract."""
    generated = {name for name in globals() if name.startswith("TestContract_")}
    for kind, name in [("transform", "taesd"), ("transform", "sd-vae"), ("quantizer", "uniform"),
                       ("quantizer", "uint8"), ("entropy_coder", "ans"), ("entropy_coder", "zlib"), ("refiner", "vae")]:
        cls_name = "TestContract_" + f"{kind}_{name}".replace("-", "_")
        assert cls_name in generated
        assert issubclass(globals()[cls_name], _contract(kind, name)) and _contract(kind, name) is not StageContract


# --- the contract must be able to fail ---------------------------------------------------
class _DriftingQuantizer(Quantizer):
    """Broken on purpose: dequantize adds a bias, so re-quantizing drifts."""

    name = "drifting"
    version = 1

    def __init__(self) -> None:
        pass

    def quantize(self, latent: np.ndarray) -> Quantized:
        latent = np.asarray(latent, np.float32)
        if not np.isfinite(latent).all():
            raise StageInputError("nan")
        return Quantized(np.rint(latent / 0.5).astype(np.int32))

    def dequantize(self, symbols: np.ndarray, side_info: bytes = b"") -> np.ndarray:
        return (symbols.astype(np.float32) + 0.6) * np.float32(0.5)


def test_contract_catches_a_non_idempotent_quantizer() -> None:
    with pytest.raises(AssertionError, match="re-quantizing"):
        QuantizerContract().test_idempotent_on_its_own_outputs(_DriftingQuantizer())


def test_contract_catches_a_lossy_entropy_coder() -> None:
    from latentcodec.entropy.zlib_coder import ZlibCoder

    class Clipping(ZlibCoder):  # broken on purpose: silently clips outliers
        def encode(self, symbols: np.ndarray) -> bytes:
            return super().encode(np.clip(np.asarray(symbols), -100, 100))

    with pytest.raises(AssertionError, match="adversarial case"):
        EntropyCoderContract().test_adversarial_symbols_round_trip(Clipping())


def test_contract_catches_a_raw_value_error_on_bad_wire_params() -> None:
    from latentcodec.quantizers.uniform import UniformQuantizer

    class Sloppy(UniformQuantizer):  # broken on purpose: struct.error escapes
        @classmethod
        def config_from_wire(cls, params: bytes) -> dict[str, Any]:
            import struct

            return {"step": struct.unpack("<f", params)[0]}

    with pytest.raises(Exception) as info:
        StageContract().test_bad_wire_params_raise_stream_errors(Sloppy())
    assert "unpack" in str(info.value)
