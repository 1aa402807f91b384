"""Images in and out of the library.

* :mod:`.reading`: every input (a file, a PIL image, a numpy array, a torch tensor)
  becomes one float32 ``(1, 3, H, W)`` sRGB tensor in [0, 1], or is refused with a clear
  :class:`~latentcodec.errors.ImageReadError` (the module docstring has the rules);
* :mod:`.core`: the pixel-limit check, constants, the decoded form every source shares;
* :mod:`.colour`: ICC profiles, CMYK, LAB and EXIF orientation;
* :mod:`.deep`: the 16-bit samples of PNG and PPM files that Pillow reduces to 8 bits;
* :mod:`.files`: image folders, 8-bit output, atomic writes that never overwrite by accident.

Importing this package does not import torch.
"""

from __future__ import annotations

from .core import DEFAULT_MAX_PIXELS, FLOAT_TOLERANCE, IMAGE_SUFFIXES, ImageLike, ImageWarning, check_pixels
from .files import atomic_write, encode_png, ensure_writable, list_images, save_image, to_pil
from .reading import open_image, to_tensor

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FLOAT_TOLERANCE",
    "IMAGE_SUFFIXES",
    "ImageLike",
    "ImageWarning",
    "atomic_write",
    "check_pixels",
    "encode_png",
    "ensure_writable",
    "list_images",
    "open_image",
    "save_image",
    "to_pil",
    "to_tensor",
]
