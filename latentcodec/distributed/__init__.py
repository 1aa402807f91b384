"""Datasets beyond one machine: compression, decompression and evaluation on Ray Data.

Every image is independent, so each job is a ``map_batches`` over an actor pool: each
actor loads the models once (built from picklable values such as ``Codec.get_config()``),
reserves ``num_gpus`` / ``num_cpus``, and Ray Data streams the rows through with
backpressure; the same code runs on a laptop (``ray.init()``) and a cluster
(``ray.init(address=...)``).  Install with ``pip install 'latentcodec[ray]'``; the rest of
the library never imports Ray.

* :func:`compress_dataset` / :func:`decompress_dataset` (:mod:`.datasets`): Ray datasets
  of images <-> datasets of streams, in memory;
* :class:`RayJobRunner` (:mod:`.jobs`): the batch CLI's jobs (files in, files out, written
  by the actors) for ``latentcodec compress|decompress ... --ray [ADDRESS]``;
* :func:`evaluate` (:mod:`.evaluation`): ``latentcodec eval --ray``, the per-image work
  of the RD evaluation on the pool, the same files as a local run;
* :class:`PoolOptions`, :func:`connect` (:mod:`.pool`): the pool's settings and ``ray.init``.

Importing this package does not import Ray; calling into it does.
"""

from __future__ import annotations

from .datasets import COMPRESS_COLUMNS, DECOMPRESS_COLUMNS, compress_dataset, decompress_dataset
from .evaluation import evaluate
from .jobs import RayJobRunner
from .pool import DistributedError, PoolOptions, connect, session

__all__ = [
    "COMPRESS_COLUMNS", "DECOMPRESS_COLUMNS", "DistributedError", "PoolOptions", "RayJobRunner",
    "compress_dataset", "connect", "decompress_dataset", "evaluate", "session",
]
