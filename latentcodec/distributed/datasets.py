"""Ray datasets of images in, datasets of streams out (and back): nothing touches the filesystem.

Input rows (:func:`compress_dataset`), one image each; the first column present is used:

* ``bytes``: the encoded file, as ``ray.data.read_binary_files(paths, include_paths=True)``
  gives it.  Preferred: the library opens it as it opens a file, so the ICC profile, EXIF
  orientation and 16-bit PNG samples count, and the streams are byte-identical to
  ``latentcodec compress FILE``;
* ``path``: a file the actor reads itself (it must see the file: a shared filesystem);
* ``image``: a decoded ``(H, W, 3|4)`` array, as ``ray.data.read_images`` gives it.  Such
  an array carries no metadata: colour profiles and orientation are already lost.

Every row needs a name, the ``key`` column if there is one, else ``path``.  Output rows
(:data:`COMPRESS_COLUMNS`): ``key``, ``stream`` (the ``.lc`` bytes), ``bytes``, ``bpp``,
``parameter`` and ``value`` (the rate parameter), ``seconds``, ``error``, ``warnings``.
A row that cannot be coded keeps its key, has ``stream`` null and its ``error`` set; the
others go on.  :func:`decompress_dataset` takes rows with ``stream`` (or ``bytes``, or a
``path`` to a ``.lc`` file) and gives ``key``, ``image`` (PNG bytes, or a uint8 array with
``format="array"``), ``bytes``, ``bpp``, ``seconds``, ``error``, ``warnings``.

Each actor holds one batch worker (:mod:`latentcodec.batch`), built from picklable values
(``Codec.get_config()``), that reads its inputs from the batch and keeps its outputs in
memory, so batching, rate control, warnings and errors are the batch CLI's exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Mapping

import numpy as np

from .. import batch
from ..batch import Job, Record
from ..errors import ImageReadError, StageConfigError, StreamError
from .pool import PoolOptions, driver_cwd, enter_driver_cwd, map_batches

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

    from ..codec import Codec

COMPRESS_COLUMNS = ("key", "stream", "bytes", "bpp", "parameter", "value", "seconds", "error", "warnings")
DECOMPRESS_COLUMNS = ("key", "image", "bytes", "bpp", "seconds", "error", "warnings")


class _InMemory:
    """Batch-worker behaviour for one batch of rows: inputs from the batch, outputs kept, not written.

    A job's ``output`` is its row number in the batch (unique even if two keys repeat).
    """

    def start(self, inputs: Mapping[str, Any]) -> None:
        self.inputs = dict(inputs)  # job.output -> bytes or array; rows given by path read the file
        self.outputs: dict[str, bytes] = {}

    def _precheck(self, job: Job) -> Record | None:
        return None

    def _read(self, job: Job) -> bytes:
        if job.output not in self.inputs:
            return super()._read(job)  # type: ignore[misc, no-any-return]  # a row given by path
        data = self.inputs[job.output]
        if data is None:  # e.g. the stream of an image that failed to compress
            raise StreamError(f"{job.input}: the row holds no data")
        return bytes(data)

    def _write(self, job: Job, data: bytes) -> None:
        self.outputs[job.output] = data


class _MemoryCompress(_InMemory, batch.CompressWorker):
    def _load(self, job: Job) -> Any:
        if job.output not in self.inputs:
            return super()._load(job)  # a row given by path
        given = self.inputs[job.output]
        if given is None:
            raise ImageReadError(f"{job.input}: the row holds no image")
        if isinstance(given, np.ndarray):
            return self.codec.load_image(given)
        return self.codec.load_image(batch.open_image_bytes(given, job.input))


class _MemoryDecompress(_InMemory, batch.DecompressWorker):
    pass


def _keys(rows: Mapping[str, Any]) -> list[str]:
    column = "key" if "key" in rows else "path" if "path" in rows else None
    if column is None:
        raise StageConfigError(f"each row needs a 'key' or 'path' column to name it; got {', '.join(rows)}")
    return [str(k) for k in rows[column]]


def _jobs(rows: Mapping[str, Any], data_columns: tuple[str, ...], suffix: str) -> tuple[list[Job], dict[str, Any]]:
    """Jobs for one batch (input: the key or path, output: the row number) and the in-memory inputs."""
    keys = _keys(rows)
    column = next((c for c in data_columns if c in rows), None)
    if column is None and "path" not in rows:
        raise StageConfigError(f"each row needs one of the columns {', '.join(data_columns)} or 'path'; got {', '.join(rows)}")
    paths = [str(p) for p in rows["path"]] if "path" in rows else keys
    jobs = [Job(keys[n] if column else paths[n], f"{n}{suffix}") for n in range(len(keys))]
    given = {} if column is None else {job.output: value for job, value in zip(jobs, rows[column], strict=True)}
    return jobs, given


class _DatasetActor:
    """One Ray actor: one in-memory batch worker, run on each batch of rows."""

    def __init__(self, mode: str, spec: Mapping[str, Any], cwd: str | None, image_format: str = "png") -> None:
        enter_driver_cwd(cwd)
        self.mode = mode
        self.image_format = image_format
        if mode == "compress":
            self.worker: _MemoryCompress | _MemoryDecompress = _MemoryCompress(spec["codec"], **spec["options"])
        else:
            self.worker = _MemoryDecompress(**spec["options"])

    def __call__(self, rows: dict[str, Any]) -> Any:
        if self.mode == "compress":
            jobs, given = _jobs(rows, ("bytes", "image"), ".lc")
        else:
            jobs, given = _jobs(rows, ("stream", "bytes"), ".png")
        self.worker.start(given)
        records = self.worker.process(jobs)
        keys = _keys(rows)
        data = [self.worker.outputs.get(job.output) for job in jobs]
        common = {
            "key": keys,
            "bytes": [r.bytes for r in records],
            "bpp": [r.bpp for r in records],
            "seconds": [r.seconds for r in records],
            "error": [r.error for r in records],
            "warnings": [list(r.warnings) for r in records],
        }
        if self.mode == "compress":
            return _table({**common, "stream": data, "parameter": [r.parameter for r in records], "value": [r.value for r in records]}, COMPRESS_COLUMNS)
        if self.image_format == "array":
            return {**{k: np.array(v, dtype=object) for k, v in common.items()}, "image": _arrays(data)}
        return _table({**common, "image": data}, DECOMPRESS_COLUMNS)


def _arrays(pngs: list[bytes | None]) -> np.ndarray:
    """Decoded PNGs as uint8 arrays; a failed row gets an empty ``(0, 0, 3)`` one (Ray's tensors have no nulls)."""

    out = np.empty(len(pngs), dtype=object)
    for n, png in enumerate(pngs):
        out[n] = np.zeros((0, 0, 3), np.uint8) if png is None else np.asarray(batch.open_image_bytes(png, "a decoded image").convert("RGB"))
    return out


def _table(columns: Mapping[str, list[Any]], order: tuple[str, ...]) -> Any:
    """An Arrow table with fixed types, so batches of failures alone still share one schema."""
    import pyarrow as pa

    types = {
        "key": pa.string(), "stream": pa.binary(), "image": pa.binary(), "bytes": pa.int64(), "bpp": pa.float64(),
        "parameter": pa.string(), "value": pa.float64(), "seconds": pa.float64(), "error": pa.string(), "warnings": pa.list_(pa.string()),
    }  # fmt: skip
    return pa.table({name: pa.array(columns[name], type=types[name]) for name in order})


def _pool(pool: PoolOptions | None, batch_size: int | None, concurrency: int | None, num_gpus: float | None, num_cpus: float | None) -> PoolOptions:
    base = pool or PoolOptions()
    return PoolOptions(
        actors=concurrency if concurrency is not None else base.actors,
        num_gpus=num_gpus if num_gpus is not None else base.num_gpus,
        num_cpus=num_cpus if num_cpus is not None else base.num_cpus,
        batch_size=batch_size if batch_size is not None else base.batch_size,
        max_restarts=base.max_restarts,
        max_task_retries=base.max_task_retries,
    )


def compress_dataset(
    ds: "ray.data.Dataset",
    preset: "str | Codec | Mapping[str, Any]" = "taesd-ans",
    *,
    quality: float | None = None,
    target_bytes: int | None = None,
    target_bpp: float | None = None,
    batch_size: int | None = None,
    concurrency: int | None = None,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    pool: PoolOptions | None = None,
    **options: Any,
) -> "ray.data.Dataset":
    """Rows of images -> rows of ``.lc`` streams (see the module docstring); lazy, like any Ray transform.

    ``preset`` is a preset name (``quality`` and ``options`` such as ``model=`` as for
    :meth:`Codec.from_preset`), a :class:`Codec` or its :meth:`Codec.get_config` dict; the
    codec is built once per actor.  ``concurrency``: actors; ``num_gpus`` / ``num_cpus``: per
    actor; ``batch_size``: images per call (:class:`PoolOptions`, which ``pool`` gives whole).
    The actors hold their CPUs for the whole run, and by default the pool leaves one CPU to
    the tasks that read ``ds``: a second pool chained behind this one (say
    :func:`decompress_dataset`) needs ``concurrency`` small enough for both.
    """
    from ..codec import Codec

    if isinstance(preset, str):
        config = Codec.from_preset(preset, quality=quality, **options).get_config()
    else:
        if quality is not None or options:
            raise StageConfigError("quality and stage options go with a preset name, not with a codec or its config")
        config = preset.get_config() if isinstance(preset, Codec) else dict(preset)
    settings = _pool(pool, batch_size, concurrency, num_gpus, num_cpus)
    worker_options = {"batch_size": batch_size, "target_bytes": target_bytes, "target_bpp": target_bpp}
    spec = {"codec": config, "options": worker_options}
    return map_batches(ds, _DatasetActor, {"mode": "compress", "spec": spec, "cwd": driver_cwd()}, settings, None, upstream_tasks=True)


def decompress_dataset(
    ds: "ray.data.Dataset",
    *,
    format: Literal["png", "array"] = "png",
    model: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    concurrency: int | None = None,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    pool: PoolOptions | None = None,
    **decode_options: Any,
) -> "ray.data.Dataset":
    """Rows of ``.lc`` streams -> rows of decoded images (see the module docstring); lazy.

    ``model``, ``device`` and ``decode_options`` (``refiner=``, ``max_pixels=``, ...) mean
    what they mean for :func:`latentcodec.decompress`; the pool arguments as for
    :func:`compress_dataset`.
    """
    if format not in ("png", "array"):
        raise StageConfigError(f"format must be 'png' or 'array', got {format!r}")
    settings = _pool(pool, batch_size, concurrency, num_gpus, num_cpus)
    runtime = {k: v for k, v in (("model", model), ("device", device)) if v is not None}
    spec = {"codec": None, "options": {**runtime, **decode_options}}
    constructor = {"mode": "decompress", "spec": spec, "cwd": driver_cwd(), "image_format": format}
    return map_batches(ds, _DatasetActor, constructor, settings, None, upstream_tasks=True)
