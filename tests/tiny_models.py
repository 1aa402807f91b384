"""Tiny, randomly initialised diffusers/transformers components for refiner tests.

Each builder creates a model from a small config with a fixed torch seed and saves it
with ``save_pretrained``, so the tests load it back through the real ``from_pretrained``
path.  Everything fits in a few hundred kilobytes and runs in milliseconds on a CPU.

Layout written by :func:`make_sd_dir` (the layout of an SD 1.5 repository)::

    DIR/unet/                 UNet2DConditionModel
    DIR/scheduler/            DDIMScheduler config (SD 1.5 betas)
    DIR/text_encoder/         CLIPTextModel        (with_text_encoder=True)
    DIR/tokenizer/            CLIPTokenizer        (with_text_encoder=True)
    DIR/empty_prompt_embedding.safetensors          (with_text_encoder=False)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CROSS_DIM = 8
TOKENS = 77


def _tiny_unet(seed: int, out_scale: float):  # type: ignore[no-untyped-def]
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        # attention only at half resolution keeps full-size Kodak latents cheap on a CPU
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=CROSS_DIM,
        attention_head_dim=2,
    )
    with torch.no_grad():  # a smooth, small noise prediction keeps DDIM well conditioned
        unet.conv_out.weight.mul_(out_scale)
        unet.conv_out.bias.mul_(out_scale)
    return unet


def _scheduler():  # type: ignore[no-untyped-def]
    from diffusers import DDIMScheduler

    # SD 1.5's noise schedule (its scheduler config, rewritten as DDIM).
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        num_train_timesteps=1000,
    )


def write_clip(directory: Path, seed: int = 0) -> None:
    """A tiny ``CLIPTextModel`` and a ``CLIPTokenizer`` with a hand-written minimal vocab."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok_dir = directory / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in letters:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), pad_token="<|endoftext|>", model_max_length=TOKENS
    )
    tokenizer.save_pretrained(str(tok_dir))

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=CROSS_DIM,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=TOKENS,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPTextModel(config).save_pretrained(str(directory / "text_encoder"))


def make_sd_dir(directory: Path, *, seed: int = 0, out_scale: float = 0.2, with_text_encoder: bool = False) -> Path:
    """Write a tiny SD-layout model directory; return it."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    _tiny_unet(seed, out_scale).save_pretrained(str(directory / "unet"))
    _scheduler().save_pretrained(str(directory / "scheduler"))
    if with_text_encoder:
        write_clip(directory, seed)
    else:
        gen = torch.Generator().manual_seed(seed + 1)
        save_file({"prompt_embeds": torch.randn(1, TOKENS, CROSS_DIM, generator=gen)}, str(directory / "empty_prompt_embedding.safetensors"))
    return directory


def make_controlnet_dir(directory: Path, sd_dir: Path, *, seed: int = 1) -> Path:
    """A tiny ``ControlNetModel`` matching the UNet in ``sd_dir``; its zero convs are made non-zero."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(sd_dir / "unet"))
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 8))
    with torch.no_grad():  # trained ControlNets have non-zero "zero convolutions"
        for name, param in controlnet.named_parameters():
            if "zero_conv" in name or name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")):
                param.copy_(torch.randn_like(param) * 0.1)
    controlnet.save_pretrained(str(directory))
    return directory


def make_tiny_sd_vae(directory: Path, *, seed: int = 2) -> Path:
    """A tiny ``AutoencoderKL`` with SD's latent layout (4 channels at 1/8)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 4, 4),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=32,
    ).save_pretrained(str(directory))
    return directory


def make_tiny_taesd(directory: Path, *, seed: int = 3) -> Path:
    """A tiny ``AutoencoderTiny`` (diffusers layout) with SD's latent layout."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    AutoencoderTiny(
        encoder_block_out_channels=(4, 4, 4, 4),
        decoder_block_out_channels=(4, 4, 4, 4),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    ).save_pretrained(str(directory))
    return directory
