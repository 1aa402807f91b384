"""``onnx-vaelight``: VAElight, a 470k-parameter SD-latent encoder/decoder pair in ONNX."""

from __future__ import annotations

from typing import ClassVar

from .transform import OnnxModelSpec, OnnxTransform

SD_SCALING_FACTOR = 0.18215

#: Conventions measured on Kodak (tests/test_onnx_vaelight.py checks them): images in
#: [-1, 1] both ways; unscaled SD latents; four decoder outputs at 1x, 2x, 4x and 8x the
#: latent resolution, summed after bilinear upsampling.
VAELIGHT = OnnxModelSpec(
    encoder_file="VAEencoder.onnx",
    decoder_file="VAEpreview.onnx",
    latent_channels=4,
    downsampling_factor=8,
    latent_scale=SD_SCALING_FACTOR,
    image_range=(-1.0, 1.0),
    combine="sum-upsampled",
    source="VAElight, github.com/Graphnull/VAElight",
)


class VAElightTransform(OnnxTransform):
    """VAElight's encoder and ``VAEpreview`` decoder; latents are TAESD-compatible.

    ``model`` is the directory with ``VAEencoder.onnx`` and ``VAEpreview.onnx``, e.g.
    ``../shared/models/vaelight``.
    """

    name: ClassVar[str] = "onnx-vaelight"
    version: ClassVar[int] = 1
    spec: ClassVar[OnnxModelSpec] = VAELIGHT

    def __init__(self, model: str = "vaelight", device: str = "auto", dtype: str = "auto") -> None:
        super().__init__(model=model, device=device, dtype=dtype)
