"""Built-in refiners (dequantized latent -> image).

Stages, each registered in the ``latentcodec.refiners`` entry-point group:

* ``vae`` (:mod:`.vae`): the transform's own synthesis, nothing more;
* ``unet-denoise`` (:mod:`.unet_denoise`): a few SD UNet denoising steps from the noise
  level of the quantization error (Bühlmann 2022);
* ``ddim-inversion`` (:mod:`.ddim_inversion`): partial DDIM inversion and regeneration
  (Jin et al. 2023);
* ``controlnet-canny`` (:mod:`.controlnet_canny`): the same, guided by a weak Canny-edge
  ControlNet (Jin et al. 2023).

Shared machinery of the diffusion refiners: :mod:`.diffusion` (model loading, DDIM
loops, size limits).
"""
