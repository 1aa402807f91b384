"""``taesd``: the Tiny AutoEncoder for Stable Diffusion (diffusers ``AutoencoderTiny``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ModelError
from ..hub import load_pretrained
from .base import TorchAutoencoderTransform

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_TAESD = "madebyollin/taesd"
_ORIGINAL_FILES = ("taesd_encoder", "taesd_decoder")


def _original_layout_files(source: str) -> tuple[Path, Path] | None:
    """The (encoder, decoder) files of an original-layout TAESD, if ``source`` names one.

    Accepts a directory holding ``taesd_encoder.{safetensors,pth}`` and
    ``taesd_decoder.{...}``, or two files joined by a comma: ``ENC,DEC``.
    """
    if "," in source:
        enc, dec = (Path(p.strip()).expanduser() for p in source.split(",", 1))
        return enc, dec
    directory = Path(source).expanduser()
    if not directory.is_dir() or (directory / "config.json").exists():
        return None
    for suffix in (".safetensors", ".pth"):
        enc, dec = (directory / (stem + suffix) for stem in _ORIGINAL_FILES)
        if enc.exists() and dec.exists():
            return enc, dec
    return None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import torch

    if not path.exists():
        raise ModelError(f"TAESD weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read TAESD weights {path}: {type(exc).__name__}: {exc}") from exc


def load_original_taesd(encoder: Path, decoder: Path) -> torch.nn.Module:
    """Build ``AutoencoderTiny`` from original-layout TAESD files.

    Key map (see ../shared/README.md): encoder ``K`` -> ``encoder.layers.K``; decoder
    ``N.rest`` -> ``decoder.layers.(N-1).rest``, because diffusers applies the decoder's
    parameter-free input clamp outside its layer list.
    """

    from diffusers import AutoencoderTiny

    state: dict[str, torch.Tensor] = {}
    for key, value in _read_state_dict(encoder).items():
        state[f"encoder.layers.{key}"] = value.float()
    for key, value in _read_state_dict(decoder).items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or int(index) < 1:
            raise ModelError(f"{decoder}: unexpected TAESD decoder key {key!r}")
        state[f"decoder.layers.{int(index) - 1}.{rest}"] = value.float()
    model = AutoencoderTiny()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{encoder.parent}: weights do not fit a TAESD model ({first})") from exc
    return model


class TAESDTransform(TorchAutoencoderTransform):
    """TAESD: 1.2M-parameter encoder/decoder pair in SD 1.x/2.x latent space.

    ``model`` is a hub id, a diffusers directory, an original-layout directory (such as
    ``../shared/models/taesd``) or ``ENCODER_FILE,DECODER_FILE``.
    """

    name: ClassVar[str] = "taesd"
    version: ClassVar[int] = 1

    def __init__(self, model: str = DEFAULT_TAESD, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)

    def _load(self) -> torch.nn.Module:
        files = _original_layout_files(self.model)
        if files is not None:
            module = load_original_taesd(*files)
        else:
            from diffusers import AutoencoderTiny

            module = load_pretrained(AutoencoderTiny.from_pretrained, self.model, what="TAESD model")
        return module.float()

    @property
    def downsampling_factor(self) -> int:
        # One stride-2 stage between consecutive encoder blocks.
        return int(self._cfg.upsampling_scaling_factor) ** (len(self._cfg.encoder_block_out_channels) - 1)

    def _encode(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        z = module.encode(x).latents
        return (z - float(getattr(self._cfg, "shift_factor", 0.0) or 0.0)) * float(self._cfg.scaling_factor)

    def _decode(self, module: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
        z = z / float(self._cfg.scaling_factor) + float(getattr(self._cfg, "shift_factor", 0.0) or 0.0)
        return module.decode(z).sample
