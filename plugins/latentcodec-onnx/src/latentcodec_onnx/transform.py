"""A latentcodec :class:`~latentcodec.Transform` backed by two ONNX Runtime sessions.

Exported autoencoders differ in small conventions (value ranges, latent scaling, how
the decoder's outputs combine); an :class:`OnnxModelSpec` states them as data, so a new
model is a spec plus a two-line subclass.  torch is imported on first use, not with the
module, so ``latentcodec stages`` lists this plugin without loading torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from latentcodec.errors import ModelError, ModelNotFoundError, StageConfigError, StageInputError
from latentcodec.stages import Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32")  # the exported graphs are fp32


@dataclass(frozen=True)
class OnnxModelSpec:
    """The conventions of one exported encoder/decoder pair."""

    encoder_file: str
    decoder_file: str
    latent_channels: int
    downsampling_factor: int
    #: Multiplies the encoder's latent to give SD-scaled latents (the decoder divides).
    latent_scale: float = 1.0
    #: Value range of the encoder's input and the decoder's output: (0, 1) or (-1, 1).
    image_range: tuple[float, float] = (-1.0, 1.0)
    #: ``"first"``: the decoder's first output is the image.  ``"sum-upsampled"``: every
    #: output is upsampled bilinearly to full size and the results are summed.
    combine: str = "first"
    source: str = ""


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise StageConfigError(
                f"device {device!r} requested but ONNX Runtime has no CUDA provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"]


class OnnxTransform(Transform):
    """Runs ``spec``'s ONNX encoder/decoder; sessions are created on first use.

    ``model`` is the directory holding the two files.  The fingerprint is a hash of the
    two files' bytes, so it identifies the weights exactly and costs no inference.
    """

    spec: ClassVar[OnnxModelSpec]
    runtime_options: ClassVar[frozenset[str]] = frozenset({"model", "device", "dtype"})

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto") -> None:
        if not isinstance(model, (str, Path)) or not str(model):
            raise StageConfigError(f"{self.name}: model must be a directory path, got {model!r}")
        if device not in DEVICES and not str(device).startswith("cuda:"):
            raise StageConfigError(f"{self.name}: device must be one of {', '.join(DEVICES)}; got {device!r}")
        if dtype not in DTYPES:
            raise StageConfigError(f"{self.name}: the ONNX graphs are float32; dtype must be auto or float32, got {dtype!r}")
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self._sessions: tuple[Any, Any] | None = None
        self._fingerprint: bytes | None = None

    # --- lazy model ---------------------------------------------------------------
    def _files(self) -> tuple[Path, Path]:
        directory = Path(self.model).expanduser()
        files = (directory / self.spec.encoder_file, directory / self.spec.decoder_file)
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelNotFoundError(
                f"{self.name}: {', '.join(missing)} not found in {str(directory)!r}; pass --model DIR, the "
                f"directory holding {self.spec.encoder_file} and {self.spec.decoder_file}"
                + (f" ({self.spec.source})" if self.spec.source else "")
            )
        return files

    @property
    def sessions(self) -> tuple[Any, Any]:
        """(encoder, decoder) ``onnxruntime.InferenceSession``s."""
        if self._sessions is None:
            import onnxruntime as ort

            files = self._files()
            h = hashlib.sha256()
            for f in files:
                h.update(f.read_bytes())
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: no provider chatter on stderr
            providers = _providers(self.device)
            try:
                sessions = tuple(ort.InferenceSession(str(f), options, providers=providers) for f in files)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelError(f"{self.name}: cannot load ONNX model from {self.model}: {type(exc).__name__}: {exc}") from exc
            self._fingerprint = h.digest()[:4]
            self._sessions = sessions  # type: ignore[assignment]
        return self._sessions  # type: ignore[return-value]

    def fingerprint(self) -> bytes:
        self.sessions  # noqa: B018 - hashes the files while loading them
        assert self._fingerprint is not None
        return self._fingerprint

    # --- contract -------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return self.spec.latent_channels

    @property
    def downsampling_factor(self) -> int:
        return self.spec.downsampling_factor

    def analysis(self, image: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
            raise StageInputError(f"{self.name}: expected an image batch (B, 3, H, W), got {shape}")
        f = self.downsampling_factor
        h, w = image.shape[-2:]
        pad_h, pad_w = (-h) % f, (-w) % f
        lo, hi = self.spec.image_range
        x = image.detach().to("cpu", torch.float32) * (hi - lo) + lo
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        encoder = self.sessions[0]
        (z,) = encoder.run(None, {encoder.get_inputs()[0].name: np.ascontiguousarray(x.numpy())})[:1]
        return torch.from_numpy(np.asarray(z, dtype=np.float32) * np.float32(self.spec.latent_scale))

    def synthesis(self, latent: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        if not isinstance(latent, torch.Tensor) or latent.dim() != 4 or latent.shape[1] != self.latent_channels:
            shape = tuple(latent.shape) if hasattr(latent, "shape") else type(latent).__name__
            raise StageInputError(f"{self.name}: expected a latent (B, {self.latent_channels}, h, w), got {shape}")
        z = latent.detach().to("cpu", torch.float32).numpy() / np.float32(self.spec.latent_scale)
        decoder = self.sessions[1]
        outputs = decoder.run(None, {decoder.get_inputs()[0].name: np.ascontiguousarray(z, dtype=np.float32)})
        size = (latent.shape[-2] * self.downsampling_factor, latent.shape[-1] * self.downsampling_factor)
        if self.spec.combine == "sum-upsampled":
            with torch.inference_mode():
                x = sum(
                    F.interpolate(torch.from_numpy(np.asarray(o, dtype=np.float32)), size=size, mode="bilinear", align_corners=False)
                    for o in outputs
                )
        else:
            x = torch.from_numpy(np.asarray(outputs[0], dtype=np.float32))
        lo, hi = self.spec.image_range
        return ((x - lo) / (hi - lo)).clamp(0.0, 1.0).contiguous()  # type: ignore[union-attr]
