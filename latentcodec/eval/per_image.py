"""The per-image work of an evaluation: every codec and rate point for one image.

This is the unit a distributed run (``latentcodec eval --ray``: a Ray Data actor pool)
schedules.  :class:`ImageEvaluator` holds the loaded codecs and metrics, so a worker builds
it once and calls it once per image; a call reads the image, codes it with every codec at
every point (size-matched codecs search the reference's file sizes of *that* image),
measures every metric and returns an :class:`ImageResult`.  Calls share no mutable state
(the codecs' caches of loaded weights and per-point chains only ever hold the same
values), so images can run in any order, process or machine, and :func:`merge` puts the
results back in image order exactly as a serial run produces them::

    plan = runner.plan_evaluation(settings)        # on the driver: images, codecs, notices
    evaluator = ImageEvaluator.from_spec(plan.spec)  # once per worker: EvalSpec pickles, loads the models
    result = evaluator(path)                       # ImageResult for one image
    merged = merge([result, ...], plan.spec.codecs)  # the ImageResults in image order
    report = runner.finish(plan, merged, threads=n, start=t0)  # JSON, CSV, plots, BD-rates, tables

An :class:`ImageResult` holds plain data only (rows are dicts of str, int, float, None;
timings; the (codec, point) pairs that no file fitted; paths written), so it pickles back
to the driver.  With ``EvalSpec.save_images`` the worker itself writes that image's
decoded PNGs and comparison sheet (:mod:`.sheet`) under that folder, which must then be
shared storage; file names depend only on the image, codec and point, so workers never
collide.  One instance must not be called from two threads at once (torch modules are
not re-entrant); make one per worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..errors import EvalError
from .codecs import ClassicalCodec, Encoded, EvalCodec, PresetCodec, make_codec
from .metrics import Metric, load_metrics

#: ``progress(units_done, label)``: 0 before a codec starts, 1 when it is done.
Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class EvalSpec:
    """What to compute for each image, without models: pickles to any worker.

    ``codecs`` are in run order (the size-matched reference first); ``points`` has an entry
    per codec; ``reference`` names the preset whose file sizes the classical codecs match
    (None: every codec sweeps its own points).
    """

    codecs: tuple[str, ...]
    points: Mapping[str, Sequence[Any]]
    metrics: tuple[str, ...]
    runtime: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None
    save_images: str | None = None  # folder for decoded PNGs and comparison sheets


@dataclass
class ImageResult:
    """One image's outcome (or, from :func:`merge`, all of them): rows, failures, seconds per codec."""

    image: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    timing: dict[str, dict[str, float]] = field(default_factory=dict)  # codec -> coding_s, metrics_s
    #: Size-matched points no quality of a codec fitted: codec, image, point, target_bytes, smallest_bytes/_bpp.
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # decoded PNGs and sheets written (--save-images)


class ImageEvaluator:
    """Every codec at every point on one image per call; see the module docstring."""

    def __init__(
        self, codecs: Sequence[EvalCodec], metrics: Sequence[Metric], points: Mapping[str, Sequence[Any]],
        reference: PresetCodec | None = None, save_images: str | Path | None = None,
    ) -> None:
        self.codecs = list(codecs)
        self.metrics = list(metrics)
        self.points = {name: list(values) for name, values in points.items()}
        self.reference = reference
        self.save_images = Path(save_images) if save_images is not None else None

    @classmethod
    def from_spec(cls, spec: EvalSpec) -> "ImageEvaluator":
        """Build the codecs and metrics a spec names (loads weights); :class:`EvalError` if one cannot run here."""
        codecs = []
        for name in spec.codecs:
            codec = make_codec(name, **spec.runtime)
            reason = codec.unavailable_reason()
            if reason:
                raise EvalError(f"codec {name!r} cannot run in this worker: {reason}")
            codecs.append(codec)
        metrics, notices = load_metrics(list(spec.metrics))
        if len(metrics) != len(spec.metrics):
            raise EvalError("a metric cannot run in this worker: " + "; ".join(notices))
        reference = next((c for c in codecs if c.name == spec.reference), None) if spec.reference else None
        if spec.reference and not isinstance(reference, PresetCodec):
            raise EvalError(f"size-matched reference {spec.reference!r} is not one of our presets in {spec.codecs}")
        return cls(codecs, metrics, spec.points, reference, spec.save_images)

    def __call__(self, path: str | Path, progress: Progress | None = None) -> ImageResult:
        from ..imageio import open_image

        path = Path(path)
        result = ImageResult(str(path), timing={c.name: {"coding_s": 0.0, "metrics_s": 0.0} for c in self.codecs})
        try:
            ref = np.asarray(open_image(path))
        except Exception as exc:  # noqa: BLE001 - reported at the end
            result.failures.append(f"{path.name}: cannot read: {exc}")
            if progress:
                progress(len(self.codecs), path.name)
            return result
        targets: dict[Any, int] = {}  # reference point -> its file size for this image
        decoded: list[tuple[dict[str, Any], np.ndarray]] | None = [] if self.save_images else None
        for codec in self.codecs:
            label = f"{path.name} {codec.name}"
            if progress:
                progress(0, label)
            t0 = time.perf_counter()
            metrics_s = self._run_codec(codec, path, ref, targets, result, decoded)
            timing = result.timing[codec.name]
            timing["metrics_s"] += metrics_s
            timing["coding_s"] += time.perf_counter() - t0 - metrics_s
            if progress:
                progress(1, label)
        if decoded is not None:
            self._write_sheet(path, ref, decoded, result)
        return result

    def _run_codec(
        self, codec: EvalCodec, path: Path, ref: np.ndarray, targets: dict[Any, int], result: ImageResult, decoded: list[Any] | None
    ) -> float:
        """All points of one codec on one image -> seconds spent in metrics."""
        metrics_s = 0.0
        try:
            if isinstance(codec, ClassicalCodec) and self.reference is not None:
                if not targets:
                    raise RuntimeError(f"no {self.reference.name} file to match for this image")
                for point, budget in targets.items():
                    enc = codec.size_matched(ref, budget)
                    if enc is None:
                        result.failures.append(f"{codec.name} / {path.name} @ {point}: no quality fits in {budget} bytes")
                        smallest = codec.smallest_bytes(ref)
                        result.unmatched.append({
                            "codec": codec.name, "image": path.name, "point": point, "target_bytes": budget,
                            "smallest_bytes": smallest, "smallest_bpp": 8.0 * smallest / (ref.shape[0] * ref.shape[1]),
                        })
                        continue
                    metrics_s += self._measure(codec, path, ref, enc, point, budget, result, decoded)
            else:
                for enc in codec.encode_points(ref, self.points[codec.name]):
                    if codec is self.reference:
                        targets[enc.param] = enc.num_bytes
                    metrics_s += self._measure(codec, path, ref, enc, enc.param, None, result, decoded)
        except Exception as exc:  # noqa: BLE001 - continue past a failing image
            result.failures.append(f"{codec.name} / {path.name}: {type(exc).__name__}: {exc}")
        return metrics_s

    def _measure(
        self, codec: EvalCodec, path: Path, ref: np.ndarray, enc: Encoded, point: Any, target: int | None, result: ImageResult, decoded: list[Any] | None
    ) -> float:
        """One CSV row: size and every metric of one decoded point (kept in ``decoded``) -> seconds it took."""
        t0 = time.perf_counter()
        height, width = ref.shape[:2]
        row: dict[str, Any] = {
            "codec": codec.name, "image": path.name, "width": width, "height": height,
            "point": point, "param": enc.param, "bytes": enc.num_bytes,
            "bpp": 8.0 * enc.num_bytes / (height * width), "target_bytes": target,
        }
        for metric in self.metrics:
            try:
                row.update(metric.measure(ref, enc.decoded))
            except Exception as exc:  # noqa: BLE001 - one metric failing must not lose the row
                row.update(dict.fromkeys(metric.column_names()))
                result.failures.append(f"{metric.name} on {codec.name} / {path.name} @ {point}: {type(exc).__name__}: {exc}")
        if decoded is not None and self.save_images is not None:
            file = self.save_images / path.stem / decoded_name(codec, enc, point, target, self.reference)
            file.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(enc.decoded, "RGB").save(file, compress_level=6)
            row["decoded_png"] = str(file)
            result.files.append(str(file))
            decoded.append((row, enc.decoded))
        result.rows.append(row)
        return time.perf_counter() - t0

    def _write_sheet(self, path: Path, ref: np.ndarray, decoded: list[tuple[dict[str, Any], np.ndarray]], result: ImageResult) -> None:
        """The image's comparison sheet (:mod:`.sheet`) and its JSON layout, beside its folder of PNGs."""
        from .sheet import comparison_rows, draw_sheet

        assert self.save_images is not None
        reference = self.reference or (self.codecs[0] if self.codecs else None)
        if reference is None:
            return
        size_matched = [c.name for c in self.codecs if isinstance(c, ClassicalCodec) and self.reference is not None]
        unmatched = {(u["codec"], u["point"]) for u in result.unmatched}
        columns = [c for m in self.metrics for c in m.column_names()]
        params = {c.name: c.param_name for c in self.codecs}
        rows = comparison_rows(ref, decoded, reference.name, [c.name for c in self.codecs], params, size_matched, unmatched, columns)
        if not rows:
            return
        sheet = self.save_images / f"{path.stem}.sheet.png"
        try:
            draw_sheet(ref, rows, sheet)
        except Exception as exc:  # noqa: BLE001 - a drawing problem must not lose the numbers
            result.failures.append(f"{path.name}: comparison sheet: {type(exc).__name__}: {exc}")
            return
        result.files += [str(sheet), str(sheet.with_suffix(".json"))]


def decoded_name(codec: EvalCodec, enc: Encoded, point: Any, target: int | None, reference: EvalCodec | None) -> str:
    """``jpeg_quality23_5987B_for-step0.5.png``: codec, its parameter, bytes, and the size-matched point."""
    name = f"{codec.name}_{codec.param_name}{enc.param}_{enc.num_bytes}B"
    if target is not None and reference is not None:
        name += f"_for-{reference.param_name}{point}"
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name) + ".png"


def merge(results: Sequence[ImageResult], codecs: Sequence[str]) -> ImageResult:
    """All images' results as one: rows, failures, unmatched points and files concatenated, timings summed.

    Pass them in image order to get exactly a serial run's CSV and JSON.
    """
    merged = ImageResult("", timing={name: {"coding_s": 0.0, "metrics_s": 0.0} for name in codecs})
    for r in results:
        merged.rows += r.rows
        merged.failures += r.failures
        merged.unmatched += r.unmatched
        merged.files += r.files
        for name, t in r.timing.items():
            for key, seconds in t.items():
                merged.timing.setdefault(name, {}).setdefault(key, 0.0)
                merged.timing[name][key] += seconds
    return merged
