"""Built-in refiners: ``vae`` (the transform's own synthesis)."""
