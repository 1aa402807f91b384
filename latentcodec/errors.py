"""The one exception hierarchy of latentcodec.

Every failure a user can cause (a bad file, a bad option, a missing model) raises a
subclass of :class:`LatentCodecError`, so callers can catch one type and the CLI can
print a one-line message instead of a traceback.
"""

from __future__ import annotations


class LatentCodecError(Exception):
    """Base class of every error latentcodec raises on purpose."""


# --- bitstream -------------------------------------------------------------------
class StreamError(LatentCodecError):
    """A compressed stream cannot be read."""


class BadMagicError(StreamError):
    """The data does not start with the latentcodec magic number."""


class UnsupportedVersionError(StreamError):
    """The stream's format version is not one this library can read."""


class CorruptStreamError(StreamError):
    """The stream is damaged: a checksum, length or field is wrong."""


class TruncatedStreamError(CorruptStreamError):
    """The stream ends before a field it promises."""


class LimitExceededError(CorruptStreamError):
    """A size in the stream is beyond the format's explicit limits."""


# --- stages and plugins ----------------------------------------------------------
class StageError(LatentCodecError):
    """A stage cannot be found, loaded or configured."""


class UnknownStageError(StageError):
    """No stage of that kind is registered under that name."""


class PluginLoadError(StageError):
    """A registered plugin failed to import or is not a valid stage."""


class DuplicateStageError(StageError):
    """Two entry points register the same stage name or wire id."""


class StageConfigError(StageError):
    """A stage option is unknown or has a bad value."""


class StageInputError(StageError):
    """A stage was given data of the wrong shape, type or range."""


# --- models ----------------------------------------------------------------------
class ModelError(LatentCodecError):
    """A model's weights cannot be loaded or do not fit."""


class ModelNotFoundError(ModelError):
    """The model is neither a local path nor available from the hub (e.g. offline)."""


class WeightsMismatchError(ModelError):
    """The stream was made with other transform weights than the ones loaded."""


class PriorMismatchError(ModelError):
    """The stream was made with a prior (learned entropy model) that is not installed here."""


# --- images and files ------------------------------------------------------------
class ImageError(LatentCodecError):
    """An input image cannot be used."""


class ImageReadError(ImageError):
    """The image file is missing, unreadable or not an image."""


class ImageTooLargeError(ImageError):
    """The image exceeds the configured pixel limit."""


class OutputExistsError(LatentCodecError):
    """The output file exists and overwriting was not requested (``--force``)."""


class BatchPlanError(LatentCodecError):
    """A batch cannot be planned: two inputs would write the same output, an output is not a folder, ..."""


class RateControlError(LatentCodecError):
    """No setting of the rate parameter meets the requested budget."""


# --- evaluation ------------------------------------------------------------------
class EvalError(LatentCodecError):
    """An evaluation step cannot produce its result."""


class MetricError(EvalError):
    """A quality metric cannot be computed for these images (its tool failed, too small, ...)."""


class BDRateError(EvalError):
    """Two rate-distortion curves cannot be compared (too few points, no overlap, bad values)."""


def one_line(exc: BaseException) -> str:
    """A one-line message for any exception, as the CLI and batch manifests print it.

    Our own errors are already written for users; anything else gets its type name, and
    running out of memory (``MemoryError``, torch's CPU ``RuntimeError: ... can't allocate
    memory`` and ``torch.cuda.OutOfMemoryError``) says so plainly.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, LatentCodecError):
        return text
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text.lower():
        detail = text if len(text) <= 200 else text[:200] + "..."
        return f"out of memory ({detail}); try a smaller image, a smaller --batch-size or another --device"
    return f"{type(exc).__name__}: {text}"
