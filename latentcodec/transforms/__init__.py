"""Built-in transforms: ``taesd`` (AutoencoderTiny) and ``sd-vae`` (AutoencoderKL)."""
