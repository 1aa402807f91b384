"""Shared machinery of the diffusion refiners: model loading, DDIM loops, size limits.

The refiners load an SD UNet, its noise schedule and the empty-prompt embedding (and a
ControlNet for ``controlnet-canny``) through diffusers/transformers ``from_pretrained``,
lazily, the first time they refine: nothing is imported or downloaded at import time.

``refiner_model`` is a hub id or a directory in the layout of an SD 1.5 repository::

    unet/  scheduler/  text_encoder/  tokenizer/   [empty_prompt_embedding.safetensors]

The empty-prompt embedding (``(1, 77, D)`` under the key ``prompt_embeds``) is read from
``prompt_embedding`` if given, else from ``empty_prompt_embedding.safetensors`` in the
model directory, else computed with the text encoder and tokenizer.  A precomputed file
saves loading the 123M-parameter text encoder; write one with
:func:`save_empty_prompt_embedding`.

Memory: the UNet's self-attention runs over every latent pixel, so the latent area is
capped at ``max_latent_pixels`` (default 128 x 128, a 1024 x 1024 image); larger inputs
raise :class:`~latentcodec.errors.ImageTooLargeError` instead of exhausting memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from ..errors import CorruptStreamError, ImageTooLargeError, ModelError, StageConfigError, StageInputError
from ..hub import load_pretrained
from ..runtime import quiet_model_loading, resolve_device, resolve_dtype
from ..stages import RefineContext, Refiner, Transform

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/sd-controlnet-canny"
EMBEDDING_FILE = "empty_prompt_embedding.safetensors"
EMBEDDING_KEY = "prompt_embeds"
#: Largest latent area (h * w) refined by default: 128 x 128, i.e. a 1024 x 1024 image.
MAX_LATENT_PIXELS = 128 * 128

SD_OPTION = "--refiner-model"
CONTROLNET_OPTION = "--controlnet-model"


# --- loading -------------------------------------------------------------------------
def _read_embedding(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read prompt embedding {path}: {type(exc).__name__}: {exc}") from exc
    if EMBEDDING_KEY not in tensors:
        raise ModelError(f"{path}: no tensor {EMBEDDING_KEY!r} (found {', '.join(tensors) or 'none'})")
    emb = tensors[EMBEDDING_KEY].float()
    if emb.dim() == 2:
        emb = emb[None]
    if emb.dim() != 3 or emb.shape[0] != 1:
        raise ModelError(f"{path}: prompt embedding must be (1, tokens, dim), got {tuple(emb.shape)}")
    return emb


def encode_empty_prompt(source: str) -> torch.Tensor:
    """The text encoder's embedding of ``""`` (float32 CPU, ``(1, 77, D)``)."""
    import torch
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = load_pretrained(CLIPTokenizer.from_pretrained, source, what="SD tokenizer", option=SD_OPTION, subfolder="tokenizer")
    encoder = load_pretrained(CLIPTextModel.from_pretrained, source, what="SD text encoder", option=SD_OPTION, subfolder="text_encoder")
    ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    with torch.inference_mode():
        return encoder.float().eval()(ids)[0].float().clone()


def empty_prompt_embedding(source: str, prompt_embedding: str | None = None) -> torch.Tensor:
    """Explicit file, else ``EMBEDDING_FILE`` beside the model, else the text encoder."""
    if prompt_embedding is not None:
        path = Path(prompt_embedding).expanduser()
        if not path.is_file():
            raise ModelError(f"prompt embedding file not found: {prompt_embedding}")
        return _read_embedding(path)
    beside = Path(source).expanduser() / EMBEDDING_FILE
    if beside.is_file():
        return _read_embedding(beside)
    return encode_empty_prompt(source)


def save_empty_prompt_embedding(source: str, path: str | Path) -> Path:
    """Compute the empty-prompt embedding once and save it as ``.safetensors``.

    Pass the file with ``prompt_embedding=PATH`` (or drop it into the model directory as
    ``empty_prompt_embedding.safetensors``) to skip the text encoder afterwards.
    """
    from safetensors.torch import save_file

    path = Path(path)
    save_file({EMBEDDING_KEY: encode_empty_prompt(source).contiguous()}, str(path))
    return path


@dataclass
class SDComponents:
    """A loaded UNet with its noise schedule and conditioning, on one device and dtype."""

    unet: torch.nn.Module
    scheduler_config: dict[str, Any]
    prompt_embeds: torch.Tensor
    device: torch.device
    dtype: torch.dtype

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config).alphas_cumprod

    @property
    def size_multiple(self) -> int:
        """Latent sides must be multiples of this (one halving per UNet down block)."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)


def _to(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    import torch

    return torch.nn.Module.to(module.eval().requires_grad_(False), device, dtype)


def load_sd_components(
    source: str, *, device: torch.device, dtype: torch.dtype, prompt_embedding: str | None = None, quiet: bool = False
) -> SDComponents:
    """Load the UNet, the scheduler config and the empty-prompt embedding of ``source``."""
    from diffusers import DDIMScheduler, UNet2DConditionModel

    with quiet_model_loading():  # loading chatter (e.g. "install accelerate") is not actionable
        unet = load_pretrained(UNet2DConditionModel.from_pretrained, source, what="SD UNet", option=SD_OPTION, subfolder="unet")
        scheduler = load_pretrained(DDIMScheduler.from_pretrained, source, what="SD scheduler config", option=SD_OPTION, subfolder="scheduler")
        embeds = empty_prompt_embedding(source, prompt_embedding)
    if embeds.shape[-1] != unet.config.cross_attention_dim:
        raise ModelError(
            f"prompt embedding width {embeds.shape[-1]} does not fit the UNet's cross-attention width "
            f"{unet.config.cross_attention_dim}; use the embedding of the same model family"
        )
    # DDIM inversion and sampling pair up step for step only with "leading" spacing.
    config = {**dict(scheduler.config), "timestep_spacing": "leading", "clip_sample": False}
    return SDComponents(_to(unet.float(), device, dtype), config, embeds.to(device, dtype), device, dtype)


def load_controlnet(source: str, *, device: torch.device, dtype: torch.dtype, quiet: bool = False) -> torch.nn.Module:
    from diffusers import ControlNetModel

    with quiet_model_loading():
        model = load_pretrained(ControlNetModel.from_pretrained, source, what="ControlNet", option=CONTROLNET_OPTION)
    return _to(model.float(), device, dtype)


# --- the denoising network and DDIM loops ----------------------------------------
@dataclass
class Control:
    """ControlNet guidance: the model, its conditioning image and its scale."""

    model: torch.nn.Module
    image: torch.Tensor  # (1, 3, H, W) in [0, 1], on the UNet's device and dtype
    scale: float


def predict_noise(sd: SDComponents, x: torch.Tensor, t: int, control: Control | None = None) -> torch.Tensor:
    """The UNet's output for float32 ``x`` at timestep ``t`` (guidance w = 1: one conditional pass)."""
    import torch

    sample = x.to(sd.dtype)
    timestep = torch.tensor(int(t), device=sd.device)
    residuals: dict[str, Any] = {}
    if control is not None:
        down, mid = control.model(
            sample,
            timestep,
            encoder_hidden_states=sd.prompt_embeds,
            controlnet_cond=control.image,
            conditioning_scale=float(control.scale),
            return_dict=False,
        )
        residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    out = sd.unet(sample, timestep, encoder_hidden_states=sd.prompt_embeds, return_dict=False, **residuals)[0]
    return out.float()


def _progress(timesteps: Sequence[int], desc: str, quiet: bool) -> Iterator[int]:
    from tqdm.auto import tqdm

    return iter(tqdm([int(t) for t in timesteps], desc=desc, disable=quiet, leave=False))


def ddim_schedulers(sd: SDComponents, steps: int) -> tuple[Any, Any]:
    """A ``DDIMScheduler`` and a ``DDIMInverseScheduler`` over the same ``steps``-step grid."""
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    with quiet_model_loading():
        forward = DDIMScheduler.from_config(sd.scheduler_config)
        inverse = DDIMInverseScheduler.from_config(sd.scheduler_config)
    forward.set_timesteps(steps)
    inverse.set_timesteps(steps)
    return forward, inverse


def ddim_invert(sd: SDComponents, latent: torch.Tensor, steps: int, count: int, *, quiet: bool = True) -> torch.Tensor:
    """Deterministic DDIM inversion (eta = 0) of a clean latent through the first ``count`` of ``steps`` steps."""
    import torch

    _, inverse = ddim_schedulers(sd, steps)
    x = latent.to(sd.device, torch.float32)
    with torch.inference_mode():
        for t in _progress(inverse.timesteps[:count], "ddim inversion", quiet):
            x = inverse.step(predict_noise(sd, x, t), t, x).prev_sample
    return x


def ddim_sample(
    sd: SDComponents,
    x: torch.Tensor,
    timesteps: Sequence[int],
    scheduler: Any,
    *,
    eta: float = 0.0,
    seed: int = 0,
    control: Control | None = None,
    quiet: bool = True,
) -> torch.Tensor:
    """DDIM sampling from ``x`` at ``timesteps[0]`` down to a clean latent (float32 on ``sd.device``)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed))  # CPU noise: the same on every device
    x = x.to(sd.device, torch.float32)
    with torch.inference_mode():
        for t in _progress(timesteps, "ddim sampling", quiet):
            eps = predict_noise(sd, x, t, control)
            noise = torch.randn(x.shape, generator=generator).to(x.device) if eta > 0 else None
            x = scheduler.step(eps, t, x, eta=float(eta), variance_noise=noise).prev_sample
    return x


def partial_ddim_roundtrip(
    sd: SDComponents,
    latent: torch.Tensor,
    *,
    steps: int,
    strength: float,
    eta: float = 0.0,
    seed: int = 0,
    control: Control | None = None,
    quiet: bool = True,
) -> torch.Tensor:
    """Invert ``latent`` to timestep ~``strength * 1000`` and sample back (Jin et al. 2023).

    With eta = 0, no control and enough steps this returns ``latent`` up to discretisation
    error: inversion and sampling use the same grid, traversed in opposite directions.
    """
    count = max(1, min(steps, int(round(steps * strength))))
    forward, _ = ddim_schedulers(sd, steps)
    noisy = ddim_invert(sd, latent, steps, count, quiet=quiet)
    return ddim_sample(sd, noisy, forward.timesteps[steps - count :], forward, eta=eta, seed=seed, control=control, quiet=quiet)


# --- sizes -----------------------------------------------------------------------------
def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the last two dims up to multiples of ``multiple`` (bottom/right)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def check_latent_size(latent: torch.Tensor, limit: int, name: str) -> None:
    if latent.dim() != 4 or latent.shape[0] != 1:
        raise StageInputError(f"{name}: expected a latent (1, C, h, w), got {tuple(latent.shape)}")
    h, w = latent.shape[-2:]
    if h * w > limit:
        raise ImageTooLargeError(
            f"{name}: latent {w}x{h} ({w * h} positions) exceeds the refiner's limit of {limit} "
            f"(about {int(limit**0.5) * 8}x{int(limit**0.5) * 8} pixels); raise max_latent_pixels if the "
            "device has the memory, or decode with --refiner vae"
        )


# --- the common refiner ----------------------------------------------------------------
class DiffusionRefiner(Refiner):
    """Base of the SD refiners: options, lazy loading, padding, seed on the wire.

    Subclasses implement :meth:`refine_latent` on a padded latent on the model's device.
    """

    latent_spaces: ClassVar[frozenset[str] | None] = frozenset({"sd"})
    runtime_options: ClassVar[frozenset[str]] = frozenset(
        {"refiner_model", "prompt_embedding", "steps", "eta", "device", "dtype", "quiet", "max_latent_pixels"}
    )

    def __init__(
        self,
        refiner_model: str = DEFAULT_SD_MODEL,
        prompt_embedding: str | None = None,
        steps: int = 50,
        eta: float = 0.0,
        seed: int = 0,
        device: str = "auto",
        dtype: str = "auto",
        quiet: bool = False,
        max_latent_pixels: int = MAX_LATENT_PIXELS,
    ) -> None:
        self.refiner_model = str(refiner_model)
        self.prompt_embedding = None if prompt_embedding is None else str(prompt_embedding)
        self.steps = _int_in(steps, "steps", 1, 1000, self.name)
        self.eta = _float_in(eta, "eta", 0.0, 1.0, self.name)
        self.seed = _int_in(seed, "seed", 0, 2**32 - 1, self.name)
        self.device = device
        self.dtype = dtype
        if not isinstance(quiet, bool):
            raise StageConfigError(f"{self.name}: quiet must be true or false")
        self.quiet = quiet
        self.max_latent_pixels = _int_in(max_latent_pixels, "max_latent_pixels", 1, 2**31 - 1, self.name)
        self._torch_device = resolve_device(device)
        self._torch_dtype = resolve_dtype(dtype, self._torch_device)
        self._sd: SDComponents | None = None

    @property
    def sd(self) -> SDComponents:
        if self._sd is None:
            self._sd = load_sd_components(
                self.refiner_model,
                device=self._torch_device,
                dtype=self._torch_dtype,
                prompt_embedding=self.prompt_embedding,
                quiet=self.quiet,
            )
        return self._sd

    def load(self) -> None:
        """Load every model this refiner needs (subclasses add theirs)."""
        self.sd  # noqa: B018

    # --- the stream: only the seed must be fixed for a reproducible decode -------
    def wire_params(self) -> bytes:
        return b"" if self.seed == 0 else struct.pack("<I", self.seed)

    @classmethod
    def config_from_wire(cls, params: bytes) -> dict[str, Any]:
        if not params:
            return {}
        if len(params) != 4:
            raise CorruptStreamError(f"refiner {cls.name!r}: expected 4 parameter bytes (seed), got {len(params)}")
        return {"seed": struct.unpack("<I", params)[0]}

    # --- contract -------------------------------------------------------------------
    def refine(self, latent: torch.Tensor, transform: Transform, context: RefineContext) -> torch.Tensor:
        check_latent_size(latent, self.max_latent_pixels, self.name)
        h, w = latent.shape[-2:]
        self.load()  # every model first: a missing one fails before any compute
        sd = self.sd
        padded = pad_to_multiple(latent.float(), sd.size_multiple)
        refined = self.refine_latent(padded, transform, context).float().cpu()[..., :h, :w]
        width, height = context.image_size
        return transform.synthesis(refined)[..., :height, :width]

    def refine_latent(self, latent: torch.Tensor, transform: Transform, context: RefineContext) -> torch.Tensor:
        """Padded latent ``(1, C, h, w)`` -> refined latent of the same shape."""
        raise NotImplementedError  # pragma: no cover


def _int_in(value: Any, what: str, lo: int, hi: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or not lo <= value <= hi:
        raise StageConfigError(f"{name}: {what} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _float_in(value: Any, what: str, lo: float, hi: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
        raise StageConfigError(f"{name}: {what} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)

