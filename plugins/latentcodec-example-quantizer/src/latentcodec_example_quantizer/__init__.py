"""An example latentcodec plugin distribution: the ``mulaw`` companding quantizer."""

from .mulaw import MuLawQuantizer

__all__ = ["MuLawQuantizer"]
