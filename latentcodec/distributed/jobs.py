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
driver before anything is sent.  Jobs still unfinished when Ray gives up become
``failed`` records saying so; those already finished keep their records and files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import batch
from ..batch import Existing, Job, Record
from ..errors import OutputExistsError, one_line
from .pool import DistributedError, PoolOptions, driver_cwd, enter_driver_cwd, map_batches_args


class _RetrySafe:
    """Batch-worker behaviour for jobs the driver has already checked, whose calls may be retried."""

    def _precheck(self, job: Job) -> Record | None:
        return None  # the driver decided about existing outputs before sending the job

    def _write(self, job: Job, data: bytes) -> None:
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


def build_worker(mode: str, spec: Mapping[str, Any]) -> batch.CompressWorker | batch.DecompressWorker:
    """The retry-safe batch worker of ``mode`` from :meth:`RayJobRunner` spec values."""
    if mode == "compress":
        return _CompressJobs(spec["codec"], **spec["options"])
    return _DecompressJobs(**spec["options"])


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

    def __init__(self, mode: str, options: Mapping[str, Any], pool: PoolOptions | None = None, *, codec: Mapping[str, Any] | None = None) -> None:
        if mode not in ("compress", "decompress") or (mode == "compress") != (codec is not None):
            raise ValueError("mode 'compress' takes a codec config, 'decompress' none")
        self.mode = mode
        self.options = dict(options)
        self.existing: Existing = self.options.get("existing", "error")
        self.codec = dict(codec) if codec is not None else None
        self.pool = pool or PoolOptions()

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
            spec = {"codec": self.codec, "options": self.options}
            ds = ray.data.from_items(rows, override_num_blocks=calls).map_batches(
                _JobActor, fn_constructor_kwargs={"mode": self.mode, "spec": spec, "cwd": driver_cwd()}, **map_batches_args(self.pool, calls)
            )
            started = time.perf_counter()
            lost: str | None = None
            try:
                for row in ds.iter_rows():
                    record = Record.from_dict(json.loads(row["record"]))
                    record.traceback = row["traceback"] or None
                    finish(int(row["index"]), record)
            except Exception as exc:  # noqa: BLE001 - what Ray could not finish is reported below
                lost = one_line(exc)
            missing = [i for i in todo if records[i] is None]
            if missing and len(missing) == len(todo):
                raise DistributedError(f"the Ray job failed before any image was done: {lost or 'no result came back'}")
            for i in missing:
                error = f"lost with a Ray worker (beyond {self.pool.max_task_retries} retries): {lost or 'no result came back'}"
                finish(i, Record(jobs[i].input, jobs[i].output, "failed", seconds=time.perf_counter() - started, error=error))
        return records  # type: ignore[return-value]
