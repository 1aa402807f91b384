"""Batch jobs (files in, files out) on a Ray actor pool: ``latentcodec compress ... --ray``.

:class:`RayJobRunner` has the batch workers' interface, ``process(jobs, on_record) ->
list[Record]``, so the CLI drives it exactly like a local
:class:`~latentcodec.batch.CompressWorker`: same plan, records, manifest and messages.
Each actor builds one worker from picklable values (a codec config, decode options) and
runs it on its share of the jobs; **the actors write the outputs**, atomically, so a
killed run leaves only whole files and a rerun with ``existing="skip"`` resumes it.

Retries: an actor whose process dies is restarted and its unfinished calls are retried
(``PoolOptions.max_restarts`` / ``max_task_retries``).  A retried call may find an output
its killed attempt already wrote; that file counts as this job's own when its bytes are
the ones the retry computed (encoding is deterministic), so it is never an "exists"
error and nothing else is ever overwritten.  Existing outputs are sorted out by the
driver before anything is sent.  An actor takes its next call only when the last one is
done, and a call whose actor died beyond the retries is dropped, not the run
(:func:`~latentcodec.distributed.pool.lose_blocks_not_jobs`): the other actors go on,
every finished job keeps its record and file, and the jobs that never came back become
``failed`` records saying so (and whether their output got written before the loss).
Tests make a worker die on a chosen image with the private ``_exit_on`` argument.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from .. import batch
from ..batch import Existing, Job, Record
from ..errors import OutputExistsError
from .pool import DistributedError, PoolOptions, brief, driver_cwd, enter_driver_cwd, lose_blocks_not_jobs, map_batches

if TYPE_CHECKING:  # pragma: no cover
    from ..batch import CompressWorker, DecompressWorker


class _RetrySafe:
    """Batch-worker behaviour for jobs the driver has already checked, whose calls may be retried."""

    #: A test hook (:class:`RayJobRunner` ``_exit_on``): the input name whose output this
    #: worker's process dies (``os._exit``) before writing, and a marker file that, when given,
    #: makes it die only once (the retry then finds the marker and goes on).
    exit_on: tuple[str, str | None] | None = None

    def _precheck(self, job: Job) -> Record | None:
        return None  # the driver decided about existing outputs before sending the job

    def _write(self, job: Job, data: bytes) -> None:
        if self.exit_on is not None and Path(job.input).name == self.exit_on[0]:
            marker = self.exit_on[1]
            if marker is None or not os.path.exists(marker):
                if marker is not None:
                    Path(marker).touch()
                os._exit(1)  # the process dies as if killed: no cleanup, no reply
        try:
            super()._write(job, data)  # type: ignore[misc]
        except OutputExistsError:
            if Path(job.output).read_bytes() != data:
                raise
            # a killed attempt of this same job wrote exactly these bytes: it is ours


class _CompressJobs(_RetrySafe, batch.CompressWorker):
    pass


class _DecompressJobs(_RetrySafe, batch.DecompressWorker):
    pass


def build_worker(mode: str, spec: Mapping[str, Any]) -> _CompressJobs | _DecompressJobs:
    """The retry-safe batch worker of ``mode`` from :meth:`RayJobRunner` spec values."""
    worker = _CompressJobs(spec["codec"], **spec["options"]) if mode == "compress" else _DecompressJobs(**spec["options"])
    worker.exit_on = spec.get("exit_on")
    return worker


class _JobActor:
    """One Ray actor: one batch worker (models loaded once), run on each batch of jobs."""

    def __init__(self, mode: str, spec: Mapping[str, Any], cwd: str | None) -> None:
        enter_driver_cwd(cwd)
        self.worker = build_worker(mode, spec)

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        jobs = [Job(str(i), str(o)) for i, o in zip(rows["input"], rows["output"], strict=True)]
        records = self.worker.process(jobs)
        return {
            "index": np.asarray(rows["index"], dtype=np.int64),
            "record": np.array([json.dumps(r.to_dict()) for r in records], dtype=object),
            "traceback": np.array([r.traceback or "" for r in records], dtype=object),
        }


class RayJobRunner:
    """A batch worker whose jobs run on a Ray actor pool (see the module docstring).

    ``mode`` ``"compress"``: ``codec`` is a :meth:`Codec.get_config` dict and ``options``
    the :class:`~latentcodec.batch.CompressWorker` keyword arguments; ``"decompress"``:
    ``options`` are the :class:`~latentcodec.batch.DecompressWorker` ones.  Ray must be
    initialised (:func:`~latentcodec.distributed.pool.connect`).
    """

    def __init__(
        self, mode: str, options: Mapping[str, Any], pool: PoolOptions | None = None, *,
        codec: Mapping[str, Any] | None = None, _exit_on: tuple[str, str | None] | None = None,
    ) -> None:  # fmt: skip
        if mode not in ("compress", "decompress") or (mode == "compress") != (codec is not None):
            raise DistributedError("mode 'compress' takes a codec config, 'decompress' none")
        self.mode = mode
        self.options = dict(options)
        self.existing: Existing = self.options.get("existing", "error")
        self.codec = dict(codec) if codec is not None else None
        self.pool = pool or PoolOptions()
        self._exit_on = _exit_on

    @classmethod
    def from_worker(cls, worker: "CompressWorker | DecompressWorker", pool: PoolOptions | None = None, **kwargs: Any) -> "RayJobRunner":
        """The runner that does on the pool what the local ``worker`` would do, with its codec and settings."""
        common = {"existing": worker.existing, "keep_tracebacks": worker.keep_tracebacks}
        if isinstance(worker, batch.CompressWorker):
            options = {
                **common, "batch_size": worker.batch_size, "target_bytes": worker.target_bytes, "target_bpp": worker.target_bpp,
                **({"search": worker.search} if getattr(worker, "search", None) is not None else {}),
            }  # fmt: skip
            return cls("compress", options, pool, codec=worker.codec.get_config(), **kwargs)
        return cls("decompress", {**common, "max_pixels": worker.max_pixels, **worker.decode_options}, pool, **kwargs)

    def process(self, jobs: Sequence[Job], on_record: Callable[[Record], None] | None = None) -> list[Record]:
        """One record per job, in job order; ``on_record`` as each arrives from the pool."""
        import ray

        records: list[Record | None] = [None] * len(jobs)

        def finish(i: int, record: Record) -> None:
            records[i] = record
            if on_record is not None:
                on_record(record)

        checker = batch._Worker(existing=self.existing)  # the batch workers' own rule for existing outputs
        todo = []
        for i, job in enumerate(jobs):
            early = checker._precheck(job)
            if early is not None:
                finish(i, early)
            else:
                todo.append(i)
        if todo:
            per_call = self.pool.images_per_call()
            calls = -(-len(todo) // per_call)
            rows = [{"index": i, "input": jobs[i].input, "output": jobs[i].output} for i in todo]
            spec = {"codec": self.codec, "options": self.options, "exit_on": self._exit_on}
            started = time.perf_counter()
            lost = "its worker process died, and so did every retry"
            try:
                with lose_blocks_not_jobs():  # a dataset takes the settings in force when it is made
                    source = ray.data.from_items(rows, override_num_blocks=calls)
                    ds = map_batches(source, _JobActor, {"mode": self.mode, "spec": spec, "cwd": driver_cwd()}, self.pool, calls)
                    for row in ds.iter_rows():
                        record = Record.from_dict(json.loads(row["record"]))
                        record.traceback = row["traceback"] or None
                        finish(int(row["index"]), record)
            except Exception as exc:  # noqa: BLE001 - what Ray could not finish is reported below
                lost = brief(exc)
            missing = [i for i in todo if records[i] is None]
            for i in missing:
                finish(i, Record(jobs[i].input, jobs[i].output, "failed", seconds=time.perf_counter() - started, error=self._lost(jobs[i], lost)))
        return records  # type: ignore[return-value]

    def _lost(self, job: Job, why: str) -> str:
        """The error of a job whose record never came back (its output, if any, is whole: written atomically)."""
        error = f"lost with a Ray worker ({self.pool.max_task_retries} retries): {why}"
        if not os.path.exists(job.output):
            return f"{error}; no output written, a rerun with --skip-existing does it"
        if self.existing == "overwrite":
            return f"{error}; {job.output} may be the old file or the new one, a rerun with --force redoes it"
        return f"{error}; {job.output} was written before the loss (whole), a rerun with --skip-existing keeps it"


@contextmanager
def cli_session(args: Any, worker: "CompressWorker | DecompressWorker", jobs: Sequence[Job]) -> Iterator[RayJobRunner]:
    """``--ray [ADDRESS]`` of ``latentcodec compress|decompress``: Ray connected, and the runner doing ``worker``'s jobs on the pool."""
    from .pool import options_from_args, session

    if any(batch.STDIO in (job.input, job.output) for job in jobs):
        raise DistributedError("--ray reads and writes files; '-' (standard input or output) works without --ray only")
    pool = options_from_args(args, batch_size=getattr(args, "batch_size", None))
    runner = RayJobRunner.from_worker(worker, pool)
    if runner.mode == "compress":  # each actor picks its own default (8 on CUDA, 1 on the CPU), not the driver's
        runner.options["batch_size"] = getattr(args, "batch_size", None)
    with session(args.ray, quiet=not getattr(args, "verbose", 0)):
        yield runner
