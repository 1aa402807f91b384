"""Loaded models kept between calls: the stages that run a network, keyed by their config.

``latentcodec.compress`` / ``decompress``, the Pillow plugin and batch decompression build
their stages afresh for every call, which is cheap until a stage loads weights (TAESD, an
SD VAE, a diffusion refiner).  :func:`shared` swaps such a stage for an equal one that is
already loaded, so the weights are read and hashed once per process, not once per call.
Two stages are equal when they have the same class and the same config, runtime options
(``model``, ``device``, ``dtype``) included.  The cache is small (:data:`MAX_ENTRIES`,
least recently used first out) because each entry may hold gigabytes.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Hashable, TypeVar

from .stages import Stage

#: Loaded stages kept at most (a transform and a refiner each count as one).
MAX_ENTRIES = 4

S = TypeVar("S", bound=Stage)

_CACHE: "OrderedDict[Hashable, Stage]" = OrderedDict()
_LOCK = threading.Lock()


def cache_key(stage: Stage) -> Hashable:
    """Class and config: what makes two stages interchangeable."""
    cls = type(stage)
    return (cls.__module__, cls.__qualname__, json.dumps(stage.get_config(), sort_keys=True, default=repr))


def shared(stage: S) -> S:
    """The cached stage equal to ``stage`` if there is one, else ``stage`` (now cached)."""
    key = cache_key(stage)
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found  # type: ignore[return-value]
        _CACHE[key] = stage
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)
        return stage


def clear() -> None:
    """Forget every cached stage (frees their memory once nothing else holds them)."""
    with _LOCK:
        _CACHE.clear()
