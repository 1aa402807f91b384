"""Batch compression and decompression: plan jobs, run them in a worker, record each one.

``latentcodec compress A.png photos/ -o out/`` and ``latentcodec decompress`` are built on
four pieces, which any other driver (a Ray Data backend, a job queue) reuses as they are:

``plan_jobs(inputs, output, *, mode, recursive=True) -> list[Job]``
    Input paths to ``Job(input, output)`` pairs.  A single file (or ``-``, standard
    input) with an ``-o`` that is not a folder is one job writing exactly that output.
    Otherwise ``output`` is a folder: a file input ``x.png`` writes ``output/x.lc``; a
    folder input keeps its images' paths relative to it (``photos/2024/a.jpg`` ->
    ``output/2024/a.lc``), subfolders included (hidden names skipped) unless
    ``recursive=False``.  Decompression reads ``.lc`` and writes ``.png`` the same way.
    Two inputs that would write the same output are a :class:`BatchPlanError` before
    any work starts.

``CompressWorker(codec, *, existing="error", batch_size=None)`` / ``DecompressWorker(**decode_options)``
    Hold the loaded models (one :class:`~latentcodec.Codec`; for decoding, the chain each
    stream names, its weights from :mod:`latentcodec.modelcache`) and process any list of
    jobs with ``worker.process(jobs, on_record=None) -> list[Record]``: one record per
    job, in job order, ``on_record`` called as each one completes.  A bad file becomes a
    ``failed`` record, never an exception; only ``KeyboardInterrupt`` (and the like)
    escapes.  Every output is written atomically (temporary file, then rename), its
    folders created as needed.  ``existing`` decides about outputs already there:
    ``"error"`` (that job fails), ``"skip"`` (resume an interrupted run) or
    ``"overwrite"``.  Compression batches the transform over images of equal size,
    ``batch_size`` at a time (default: 8 on CUDA, 1 on the CPU), byte-identical to one
    image at a time (:meth:`Codec.analyse`).  Both workers can be built from plain, picklable values:
    ``CompressWorker(codec.get_config(), ...)`` rebuilds the codec in the worker process.

:class:`Record`
    The manifest row: ``input, output, status ("ok" | "skipped" | "failed"), bytes`` (of
    the ``.lc`` stream: the output when compressing, the input when decompressing)``,
    bpp, parameter, value`` (the quantizer's rate parameter, e.g. ``step`` 0.5)``,
    seconds, error, warnings``.  ``to_dict`` / ``from_dict`` convert it for JSON or Arrow.

:class:`ManifestWriter` / :func:`read_manifest`
    A JSON-lines log, one record per line, each line written whole and flushed as its
    job ends, so an interrupted run keeps the lines of what it finished.  An existing
    manifest follows ``existing`` too: ``"skip"`` appends (a resumed run), ``"overwrite"``
    starts afresh, ``"error"`` refuses.

Why one module of about 470 lines: these four pieces are one contract that the CLI and
:mod:`latentcodec.distributed` drive alike (the workers write records the manifest reads
back, under the same output rules); split, each half would have to restate it.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
import traceback as tb
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence

from .errors import BatchPlanError, ImageReadError, OutputExistsError, StageConfigError, StreamError, one_line
from .imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageWarning, atomic_write, list_images
from .imageio.files import encode_image

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from .codec import Codec, CompressResult
    from .rdo.efforts import SearchSettings

Mode = Literal["compress", "decompress"]
Existing = Literal["error", "skip", "overwrite"]
Status = Literal["ok", "skipped", "failed"]

#: The standard input or output, for single jobs.
STDIO = "-"
STREAM_SUFFIX = ".lc"
DECODED_SUFFIX = ".png"


@dataclass(frozen=True)
class Job:
    """One input file and the output it writes (``-``: standard input / output)."""

    input: str
    output: str

    def to_dict(self) -> dict[str, str]:
        return {"input": self.input, "output": self.output}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "Job":
        return cls(str(row["input"]), str(row["output"]))


@dataclass
class Record:
    """What happened to one job: a manifest line."""

    input: str
    output: str
    status: Status
    bytes: int | None = None
    bpp: float | None = None
    parameter: str | None = None
    value: float | int | None = None
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: The failure's traceback, for ``-v``; never written to the manifest.
    traceback: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("traceback")
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "Record":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


# --- planning ---------------------------------------------------------------------------
def _names_folder(output: str) -> bool:
    return output.endswith(("/", os.sep)) or os.path.isdir(output)


def is_single(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> bool:
    """Whether ``inputs`` and ``output`` name one job writing exactly ``output`` (not a folder)."""
    sources = [os.fspath(i) for i in inputs]
    out = os.fspath(output)
    return len(sources) == 1 and (sources[0] == STDIO or not os.path.isdir(sources[0])) and (out == STDIO or not _names_folder(out))


def plan_jobs(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *, mode: Mode, recursive: bool = True) -> list[Job]:
    """The jobs for ``inputs`` writing under ``output`` (the rules are in the module docstring)."""
    if mode not in ("compress", "decompress"):
        raise BatchPlanError(f"mode must be 'compress' or 'decompress', got {mode!r}")
    sources = [os.fspath(i) for i in inputs]
    out = os.fspath(output)
    if not sources:
        raise BatchPlanError("no inputs given")
    if is_single(sources, out):
        return [Job(sources[0], out)]
    if STDIO in sources or out == STDIO:
        raise BatchPlanError("'-' (standard input or output) works with one input and one output only")
    if os.path.exists(out) and not os.path.isdir(out):
        raise BatchPlanError(f"{out} is a file; several inputs or a folder need -o FOLDER")
    suffixes, new_suffix = (IMAGE_SUFFIXES, STREAM_SUFFIX) if mode == "compress" else ((STREAM_SUFFIX,), DECODED_SUFFIX)
    jobs: list[Job] = []
    for source in sources:
        if os.path.isdir(source):
            root = Path(source)
            for path in list_images(root, recursive=recursive, suffixes=suffixes):
                jobs.append(Job(str(path), str(Path(out) / path.relative_to(root).with_suffix(new_suffix))))
        else:
            jobs.append(Job(source, str(Path(out) / Path(source).with_suffix(new_suffix).name)))
    claimed: dict[str, str] = {}
    for job in jobs:
        key = os.path.normpath(job.output)
        if key in claimed and claimed[key] != job.input:
            raise BatchPlanError(f"{claimed[key]} and {job.input} would both write {job.output}; rename one or compress them separately")
        claimed[key] = job.input
    return jobs


# --- workers ------------------------------------------------------------------------------
def read_input(path: str) -> bytes:
    """The bytes of a file, or of standard input for ``-``; a missing or unreadable file is a :class:`StreamError`."""
    if path == STDIO:
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise StreamError(f"no such file: {path}") from None
    except OSError as exc:
        raise StreamError(f"cannot read {path}: {exc.strerror or exc}") from None


def open_image_bytes(data: bytes, what: str) -> "Image.Image":
    """An encoded image held in memory, opened (not decoded) like a file, so its ICC profile,
    EXIF orientation and 16-bit samples are read as from a path; :class:`ImageReadError` if it is none."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read {what} as an image: {exc}") from exc


def _write_output(path: str, data: bytes, *, force: bool) -> None:
    if path == STDIO:
        if sys.stdout.isatty():
            raise BatchPlanError("refusing to write binary data to a terminal; redirect standard output or give -o FILE")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    parent = Path(path).parent
    if str(parent) not in ("", "."):
        parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, force=force)


class _Worker:
    """What both workers share: existing outputs, error capture, timing."""

    def __init__(self, *, existing: Existing = "error", keep_tracebacks: bool = False) -> None:
        if existing not in ("error", "skip", "overwrite"):
            raise BatchPlanError(f"existing must be 'error', 'skip' or 'overwrite', got {existing!r}")
        self.existing = existing
        self.keep_tracebacks = keep_tracebacks

    def _precheck(self, job: Job) -> Record | None:
        """A finished record when the output already exists (skipped or failed), else None."""
        if job.output == STDIO or not os.path.lexists(job.output):
            return None
        if self.existing == "skip":
            return Record(job.input, job.output, "skipped")
        if self.existing == "error":
            return Record(job.input, job.output, "failed", error=f"{job.output} exists; pass --force to overwrite it or --skip-existing to keep it")
        return None

    def _failed(self, job: Job, exc: BaseException, seconds: float, found: list[str]) -> Record:
        trace = "".join(tb.format_exception(type(exc), exc, exc.__traceback__)) if self.keep_tracebacks else None
        return Record(job.input, job.output, "failed", seconds=seconds, error=one_line(exc), warnings=found, traceback=trace)

    def _read(self, job: Job) -> bytes:
        """The input's bytes (a driver that holds them in memory overrides this)."""
        return read_input(job.input)

    def _write(self, job: Job, data: bytes) -> None:
        _write_output(job.output, data, force=self.existing == "overwrite")


class _Capture(warnings.catch_warnings):
    """Collect the warnings of one job as one-line messages; every
    :class:`~latentcodec.imageio.ImageWarning`, not only the first from each place."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(record=True)
        self._into = into

    def __enter__(self) -> Any:
        log = super().__enter__()
        warnings.simplefilter("always", ImageWarning)
        self._log = log
        return log

    def __exit__(self, *exc: Any) -> None:
        self._into.extend(" ".join(str(w.message).split()) for w in self._log)
        super().__exit__(*exc)


def _size_hint(path: str) -> tuple[int, int]:
    """An image's size from its header (no pixels decoded), to group equal sizes; (0, 0) if unknown."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - the real read reports the problem
        return (0, 0)


class CompressWorker(_Worker):
    """Compress jobs with one :class:`~latentcodec.Codec` (or its :meth:`~latentcodec.Codec.get_config` dict).

    ``target_bytes`` / ``target_bpp``: rate control per image
    (:func:`latentcodec.ratecontrol.compress_latent_to_target`) instead of the codec's rate.
    ``search``: the encoder search (:class:`latentcodec.rdo.SearchSettings`, or a dict of its
    fields; None or effort 0: the plain encoder), checked against the chain before any job.
    """

    def __init__(
        self,
        codec: "Codec | Mapping[str, Any]",
        *,
        existing: Existing = "error",
        batch_size: int | None = None,
        target_bytes: int | None = None,
        target_bpp: float | None = None,
        keep_tracebacks: bool = False,
        search: "SearchSettings | Mapping[str, Any] | None" = None,
    ) -> None:
        from .codec import Codec
        from .rdo.efforts import SearchSettings

        super().__init__(existing=existing, keep_tracebacks=keep_tracebacks)
        self.codec = codec if isinstance(codec, Codec) else Codec.from_config(codec)
        self.search = search if isinstance(search, SearchSettings) or search is None else SearchSettings(**search)
        if self.search is not None and self.search.steps:
            from .rdo.encode import check_search

            check_search(self.codec, self.search)  # a transform without gradients fails here, before any image
        self.batch_size = self.codec.default_batch_size() if batch_size is None else batch_size
        if target_bytes is not None and target_bpp is not None:
            raise StageConfigError("give target_bytes or target_bpp, not both")
        if target_bpp is not None and not (math.isfinite(target_bpp) and target_bpp > 0):
            raise StageConfigError(f"target bpp must be positive, got {target_bpp}")
        self.target_bytes = target_bytes
        self.target_bpp = target_bpp

    def _encode(self, latent: Any, size: tuple[int, int], image: "torch.Tensor | None" = None) -> "CompressResult":
        if self.target_bytes is None and self.target_bpp is None:
            return self.codec.compress_latent(latent, size, return_result=True, image=image, search=self.search)
        from .codec import CompressResult
        from .ratecontrol import compress_latent_to_target, target_from_bpp

        target = self.target_bytes if self.target_bpp is None else target_from_bpp(self.target_bpp, size)
        r = compress_latent_to_target(self.codec, latent, size, target_bytes=target, image=image, search=self.search)
        return CompressResult(r.data, size[0], size[1], tuple(s.name for s in self.codec.stages), r.parameter, r.value)

    def _load(self, job: Job) -> "torch.Tensor":
        if job.input != STDIO:
            if not os.path.exists(job.input):
                raise ImageReadError(f"no such image file: {job.input}")
            return self.codec.load_image(job.input)
        return self.codec.load_image(open_image_bytes(self._read(job), "standard input"))

    def process(self, jobs: Sequence[Job], on_record: Callable[[Record], None] | None = None) -> list[Record]:
        """One record per job, in job order (see the module docstring)."""
        records: list[Record | None] = [None] * len(jobs)

        def finish(i: int, record: Record) -> None:
            records[i] = record
            if on_record is not None:
                on_record(record)

        todo = []
        for i, job in enumerate(jobs):
            early = self._precheck(job)
            if early is not None:
                finish(i, early)
            else:
                todo.append(i)
        hints = {i: (0, 0) if jobs[i].input == STDIO else _size_hint(jobs[i].input) for i in todo}
        todo.sort(key=lambda i: hints[i])  # stable: equal sizes together, in plan order
        start = 0
        while start < len(todo):
            end = start + 1
            while end < len(todo) and end - start < self.batch_size and hints[todo[end]] == hints[todo[start]]:
                end += 1
            self._chunk(jobs, todo[start:end], finish)
            start = end
        return records  # type: ignore[return-value]

    def _chunk(self, jobs: Sequence[Job], chunk: list[int], finish: Callable[[int, Record], None]) -> None:
        """Load, analyse together, code and write the jobs ``chunk`` (indices into ``jobs``)."""
        loaded: list[tuple[int, Any, float, list[str]]] = []
        for i in chunk:
            found: list[str] = []
            t0 = time.perf_counter()
            try:
                with _Capture(found):
                    tensor = self._load(jobs[i])
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
                finish(i, self._failed(jobs[i], exc, time.perf_counter() - t0, found))
                continue
            loaded.append((i, tensor, time.perf_counter() - t0, found))
        if not loaded:
            return
        t0 = time.perf_counter()
        try:
            latents: list[Any] = self.codec.analyse([t for _, t, _, _ in loaded], batch_size=self.batch_size)
            shared = (time.perf_counter() - t0) / len(loaded)
        except Exception:  # noqa: BLE001 - e.g. out of memory for the batch: one at a time
            latents, shared = [None] * len(loaded), 0.0
        for (i, tensor, spent, found), latent in zip(loaded, latents, strict=True):
            job = jobs[i]
            t0 = time.perf_counter()
            try:
                with _Capture(found):
                    if latent is None:
                        latent = self.codec.analyse([tensor], batch_size=1)[0]
                    size = (int(tensor.shape[-1]), int(tensor.shape[-2]))
                    result = self._encode(latent, size, tensor)
                    self._write(job, result.data)
            except Exception as exc:  # noqa: BLE001
                finish(i, self._failed(job, exc, spent + shared + time.perf_counter() - t0, found))
                continue
            seconds = spent + shared + time.perf_counter() - t0
            finish(i, Record(job.input, job.output, "ok", result.nbytes, result.bpp, result.parameter, result.value, seconds, warnings=found))


class DecompressWorker(_Worker):
    """Decompress jobs; each stream's chain comes from its header, the weights from the model cache.

    ``model``, ``device``, ``dtype``, ``transform``, ``refiner``, ``refiner_options``,
    ``ignore_weights`` and ``max_pixels`` mean what they mean for :func:`latentcodec.decompress`.
    """

    def __init__(
        self,
        *,
        existing: Existing = "error",
        keep_tracebacks: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **decode_options: Any,
    ) -> None:
        super().__init__(existing=existing, keep_tracebacks=keep_tracebacks)
        self.max_pixels = max_pixels
        self.decode_options = decode_options

    def process(self, jobs: Sequence[Job], on_record: Callable[[Record], None] | None = None) -> list[Record]:
        """One record per job, in job order (see the module docstring)."""
        from . import bitstream
        from .api import decompress
        from .info import stream_rate

        records = []
        for job in jobs:
            record = self._precheck(job)
            if record is None:
                found: list[str] = []
                t0 = time.perf_counter()
                try:
                    with _Capture(found):
                        data = self._read(job)
                        image = decompress(data, max_pixels=self.max_pixels, **self.decode_options)
                        self._write(job, encode_image(image, job.output))
                    stream = bitstream.read(data)
                    parameter, value = stream_rate(stream)
                    record = Record(
                        job.input, job.output, "ok", len(data), 8.0 * len(data) / (stream.width * stream.height),
                        parameter, value, time.perf_counter() - t0, warnings=found,
                    )  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
                    record = self._failed(job, exc, time.perf_counter() - t0, found)
            records.append(record)
            if on_record is not None:
                on_record(record)
        return records


# --- the manifest --------------------------------------------------------------------------
class ManifestWriter:
    """A JSON-lines manifest, one :class:`Record` per line, flushed as each job ends."""

    def __init__(self, path: str | os.PathLike, *, existing: Existing = "error") -> None:
        self.path = Path(path)
        if self.path.exists() and existing == "error":
            raise OutputExistsError(f"manifest {self.path} exists; pass --force to replace it or --skip-existing to append to it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(self.path, "a" if existing == "skip" else "w", encoding="utf-8")  # noqa: SIM115

    def write(self, record: Record) -> None:
        self._fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_manifest(path: str | os.PathLike) -> list[Record]:
    """The records of a manifest, in the order they were written."""
    return [Record.from_dict(json.loads(line)) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def summary(records: Iterable[Record]) -> dict[Status, int]:
    """How many records have each status."""
    counts: dict[Status, int] = {"ok": 0, "skipped": 0, "failed": 0}
    for r in records:
        counts[r.status] += 1
    return counts
