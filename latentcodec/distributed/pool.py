"""The actor pool every Ray job here runs on: its settings, the CLI flags that set them, connecting.

One :class:`PoolOptions` describes the pool (actors, CPUs and GPUs per actor, images per
call, restarts); :func:`map_batches` applies it to a dataset, so compression, decompression and evaluation
schedule the same way.  This module imports Ray only inside functions: the CLI adds its
flags without importing Ray.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from ..cli_common import nonnegative_float, positive_int
from ..errors import LatentCodecError, one_line

#: Each actor is restarted this many times after its process dies, and a call it had in
#: flight is retried as often (Ray's ``max_restarts`` / ``max_task_retries``).  Ray Data's
#: default is forever, which turns an image that kills its worker every time into a hang.
DEFAULT_RETRIES = 3


class DistributedError(LatentCodecError):
    """Ray is missing, cannot connect, or lost a job beyond its retries."""


@dataclass(frozen=True)
class PoolOptions:
    """How the actor pool is sized and scheduled (picklable; the CLI builds it from its ``--ray-*`` flags).

    ``actors``: a fixed pool of this many actors (None: as many as the cluster's CPUs, or
    GPUs with ``num_gpus``, allow, at most one per call).  ``num_gpus`` / ``num_cpus``: what
    each actor reserves; fractions share a device (0.5: two actors per GPU), and Ray sets
    the actor's ``CUDA_VISIBLE_DEVICES`` and ``OMP_NUM_THREADS`` from them.  ``batch_size``:
    images per actor call (None: 8 with GPUs, else 1, so a lost call costs one image on the
    CPU).  ``max_restarts`` / ``max_task_retries``: see :data:`DEFAULT_RETRIES`.
    """

    actors: int | None = None
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    batch_size: int | None = None
    max_restarts: int = DEFAULT_RETRIES
    max_task_retries: int = DEFAULT_RETRIES

    def images_per_call(self) -> int:
        return self.batch_size if self.batch_size is not None else (8 if self.num_gpus > 0 else 1)


def connect(address: str | None = None, *, quiet: bool = True) -> bool:
    """``ray.init(address=...)`` unless Ray is already initialised; True if this call started it.

    ``address`` None or ``""``: ``ray.init()`` (a local instance, or the cluster ``RAY_ADDRESS``
    names); else ``ray.init(address=address)`` (``auto``, ``HOST:6379``, ``ray://HOST:10001``).
    ``quiet`` keeps the workers' output and Ray's info lines off the terminal.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": not quiet, "logging_level": logging.WARNING if quiet else logging.INFO}
    if not address:
        kwargs["include_dashboard"] = False  # only a local instance takes it
    try:
        ray.init(address=address or None, **kwargs)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError...: one line
        raise DistributedError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc
    return True


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise DistributedError(f"Ray is not installed ({exc}); pip install 'latentcodec[ray]'") from None
    return ray


def quiet_data() -> None:
    """Ray Data without its own progress bars and start-up lines (the CLI draws its own bar)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def brief(exc: BaseException) -> str:
    """A Ray error in one short line: its type and first sentence (Ray's run on for a paragraph)."""
    text = one_line(exc)
    head, sep, _ = text.partition(". ")
    return head + ("." if sep else "")


@contextmanager
def lose_blocks_not_jobs() -> Iterator[None]:
    """Ray Data executions that drop a batch whose actor died beyond its retries, and go on.

    By default one such batch aborts the whole execution, and the results of batches
    already finished but not yet handed to the driver are thrown away with it; here the
    others go on (``DataContext.max_errored_blocks = -1``) and the caller reports the rows
    that never came back.  Ray Data's own log line for each dropped batch is silenced: the
    caller's report names the images instead.
    """
    from ray.data import DataContext

    ctx = DataContext.get_current()
    log = logging.getLogger("ray.data")
    before, level = ctx.max_errored_blocks, log.level
    ctx.max_errored_blocks = -1
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        ctx.max_errored_blocks = before
        log.setLevel(level)


def pool_size(options: PoolOptions, calls: int | None, *, upstream_tasks: bool = False) -> int:
    """The number of actors: ``options.actors``, else what the cluster's resources fit; at least 1, at most ``calls`` (None: unknown).

    ``upstream_tasks``: the dataset is produced by tasks (``read_binary_files``, ``read_images``)
    that need a CPU each while the actors run; by default one CPU is then left to them,
    else a pool that takes every CPU waits forever for its first rows.
    """
    import ray

    resources = ray.cluster_resources()
    cpus = resources.get("CPU", 1.0)
    if options.actors is not None:
        size = max(1, min(options.actors, calls)) if calls else options.actors
        if upstream_tasks and options.num_cpus > 0 and size * options.num_cpus > cpus - 1:
            warnings.warn(
                f"{size} actors of {options.num_cpus:g} CPUs leave less than one of the cluster's {cpus:g} CPUs to the tasks "
                "that read the dataset; if it stalls, give fewer actors or fewer CPUs per actor",
                RuntimeWarning, stacklevel=3,
            )  # fmt: skip
        return size
    fits = [(cpus - (1 if upstream_tasks else 0)) / options.num_cpus] if options.num_cpus > 0 else []
    if options.num_gpus > 0:
        fits.append(resources.get("GPU", 0.0) / options.num_gpus)
    size = math.floor(min(fits)) if fits else 1
    if options.num_gpus > 0 and size < 1:
        raise DistributedError(f"the cluster has {resources.get('GPU', 0):g} GPUs; an actor needs {options.num_gpus:g}")
    return max(1, min(size, calls) if calls else size)


def map_batches(ds: Any, actor: type, constructor: dict[str, Any], options: PoolOptions, calls: int | None, *, upstream_tasks: bool = False) -> Any:
    """``ds.map_batches(actor, ...)`` on this pool: a fixed number of actors, each built once with ``constructor``.

    Ray Data restarts an actor whose process dies and retries the call it had in flight
    (``max_restarts`` / ``max_task_retries``, which Ray 2.60 still takes only as remote
    arguments; its deprecation warning for them is silenced here).  An actor gets its next
    call only when it has finished the last one, so a process that dies takes no queued
    images with it: when an image kills its actor every time, only that call is lost and
    the other actors go on.
    """
    from ray.data import ActorPoolStrategy

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return ds.map_batches(
            actor,
            fn_constructor_kwargs=constructor,
            compute=ActorPoolStrategy(size=pool_size(options, calls, upstream_tasks=upstream_tasks), max_tasks_in_flight_per_actor=1),
            batch_size=options.images_per_call(),
            num_cpus=options.num_cpus,
            num_gpus=options.num_gpus or None,
            max_restarts=options.max_restarts,
            max_task_retries=options.max_task_retries,
        )


def driver_cwd() -> str:
    """The folder relative paths mean: each actor works there when its node has it (a shared filesystem)."""
    return os.getcwd()


def enter_driver_cwd(cwd: str | None) -> None:
    """In an actor: use the driver's folder for relative paths, where this node has it."""
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)


# --- the CLI flags ------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the ``--ray-*`` pool flags (see README, 'Datasets on Ray')."""
    g = p.add_argument_group("Ray (pip install 'latentcodec[ray]')")
    g.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run on a Ray actor pool: a local instance, or the cluster at ADDRESS (auto, HOST:6379, ray://HOST:10001)",
    )
    g.add_argument(
        "--ray-actors", type=positive_int, metavar="N",
        help="actors in the pool, each loading the models once (default: as many as the CPUs, or GPUs, allow)",
    )
    g.add_argument(
        "--ray-gpus-per-actor", "--num-gpus", type=nonnegative_float, default=0.0, metavar="X",
        help="GPUs each actor reserves; 0.5 puts two actors on a GPU (default 0: CPU)",
    )
    g.add_argument("--ray-cpus-per-actor", type=nonnegative_float, default=1.0, metavar="X", help="CPUs each actor reserves, also its torch threads (default 1)")
    g.add_argument(
        "--ray-retries", type=int, default=DEFAULT_RETRIES, metavar="N",
        help=f"restarts of a dead actor and retries of its lost images before they are reported failed (default {DEFAULT_RETRIES})",
    )


def options_from_args(args: argparse.Namespace, *, batch_size: int | None = None) -> PoolOptions:
    """The :class:`PoolOptions` of parsed ``--ray-*`` flags."""
    retries = max(0, args.ray_retries)
    return PoolOptions(
        actors=args.ray_actors, num_gpus=args.ray_gpus_per_actor, num_cpus=args.ray_cpus_per_actor,
        batch_size=batch_size, max_restarts=retries, max_task_retries=retries,
    )


@contextmanager
def session(address: str | None, *, quiet: bool = True) -> Iterator[None]:
    """:func:`connect` for the length of a command; shuts Ray down after if it started it here."""
    started = connect(address, quiet=quiet)
    try:
        quiet_data()
        yield
    finally:
        if started:
            import ray

            ray.shutdown()
