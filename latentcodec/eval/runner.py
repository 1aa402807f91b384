"""The evaluation loop: codecs x images x rate points -> metrics, JSON, CSV, plots, BD-rates.

Outputs in ``out/``:

* ``results/<codec>.json``: CompressAI's schema (``name``, ``description``,
  ``results: {bpp: [...], psnr-rgb: [...], ...}``), one entry per rate point, averaged
  over the images, sorted by rate;
* ``per_image.csv``: one row per codec, image and point (bytes, bpp, every metric);
* ``rd-<metric>.png``: all curves for one metric;
* ``bd_rate.json``: BD-rate (%) of every codec against the anchor, per metric;
* ``eval.json``: settings, notices (skipped codecs and metrics), failures and timings;
* ``size_matched.json`` / ``.md`` (``--size-matched``): per rate point of our preset, every
  codec on every metric, the winner and the gap to AVIF (:mod:`.size_matched`);
* with ``save_images``: every decoded point as a PNG and one comparison sheet per image
  (:mod:`.sheet`); ``per_image.csv`` then names each row's PNG.

A failing image is recorded and the loop goes on; failures are listed at the end.

The run has three steps, so the middle one can be distributed (see :mod:`.per_image`):

1. :func:`plan_evaluation` (settings -> :class:`EvalPlan`: images, usable codecs and metrics,
   points, notices; ``plan.spec`` is the picklable :class:`~.per_image.EvalSpec`);
2. one :class:`~.per_image.ImageEvaluator` call per image (:func:`run_images` does them in
   order), the results combined by :func:`~.per_image.merge`;
3. :func:`finish` (merged rows -> curves, BD-rates, every file above).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import OutputExistsError, StageConfigError
from ..imageio import list_images
from . import size_matched
from .bdrate import BDRateError, bd_rate
from .codecs import ClassicalCodec, EvalCodec, PresetCodec, make_codec, select_points
from .metrics import Metric, load_metrics
from .per_image import EvalSpec, ImageEvaluator, ImageResult, merge


@dataclass
class EvalSettings:
    dataset: str | Path
    codecs: Sequence[str]
    out: str | Path
    runtime: Mapping[str, Any] = field(default_factory=dict)  # model, device, dtype
    points: int | Mapping[str, Sequence[Any]] | None = None
    size_matched: bool = False
    match: str | None = None  # our preset whose file sizes classical codecs match
    metrics: Sequence[str] | None = None
    anchor: str | None = None
    limit: int | None = None
    force: bool = False
    progress: bool = True
    threads: int | None = None  # torch intra-op threads; None: auto (see choose_threads)
    save_images: str | Path | None = None  # folder for every decoded point and a comparison sheet per image


@dataclass
class EvalReport:
    results: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    bd_rates: dict[str, Any]
    notices: list[str]
    failures: list[str]
    files: list[Path]
    seconds: float
    out: Path | None = None
    size_matched: dict[str, Any] | None = None  # the size-matched table (size_matched.json), in that mode


def _points_for(codec: EvalCodec, points: int | Mapping[str, Sequence[Any]] | None) -> list[Any]:
    """The codec's points: by its full name, else (``PRESET:OPTIONS``) by its preset's name."""
    if isinstance(points, Mapping):
        base = getattr(codec, "base_name", None)
        return select_points(codec, points.get(codec.name, points.get(base) if base else None))
    return select_points(codec, points)


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def aggregate(rows: list[dict[str, Any]], codec: EvalCodec, metric_names: list[str], description: str) -> dict[str, Any]:
    """Average one codec's rows per rate point into CompressAI's schema."""
    by_point: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_point.setdefault(str(row["point"]), []).append(row)
    points = []
    for key, group in by_point.items():
        entry: dict[str, Any] = {"point": group[0]["point"], "images": len(group)}
        entry["bpp"] = _mean([r["bpp"] for r in group])
        for m in metric_names:
            entry[m] = _mean([r.get(m) for r in group])
        entry["param"] = _mean([float(r["param"]) for r in group if isinstance(r["param"], (int, float))])
        points.append(entry)
    points.sort(key=lambda e: (e["bpp"] is None, e["bpp"]))
    return {
        "name": codec.name,
        "description": description,
        "results": {"bpp": [p["bpp"] for p in points], **{m: [p[m] for p in points] for m in metric_names}},
        "rate_parameter": {"name": codec.param_name, "points": [p["point"] for p in points], "mean_value": [p["param"] for p in points]},
        "images": [p["images"] for p in points],
    }


def bd_rate_table(results: Mapping[str, Mapping[str, Any]], metric_names: list[str], anchor: str) -> dict[str, Any]:
    """BD-rate (%) of every result against ``anchor`` per metric; None where undefined."""
    table: dict[str, Any] = {"anchor": anchor, "unit": "percent (negative: fewer bits than the anchor)", "bd_rate": {}, "notes": []}
    base = results[anchor]["results"]
    for name, result in results.items():
        if name == anchor:
            continue
        row: dict[str, float | None] = {}
        for m in metric_names:
            try:
                row[m] = bd_rate(base["bpp"], base[m], result["results"]["bpp"], result["results"][m])
            except (BDRateError, KeyError, TypeError) as exc:
                row[m] = None
                table["notes"].append(f"{name} vs {anchor} on {m}: {exc}")
        table["bd_rate"][name] = row
    return table


def choose_threads(requested: int | None = None) -> int:
    """Torch intra-op threads for the run: ``requested``, else the cores left idle.

    On a shared machine whose load exceeds its cores, OpenMP threads that spin-wait for
    each other make a 2-thread convolution over 10x slower than a 1-thread one; asking
    only for the idle cores avoids that pathology and costs nothing on an idle machine.
    """
    import os

    import torch

    if requested is not None:
        if requested < 1:
            raise StageConfigError(f"--threads must be at least 1, got {requested}")
        return requested
    default = torch.get_num_threads()
    try:
        idle = (os.cpu_count() or 1) - os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return default
    return max(1, min(default, int(idle)))


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def evaluate(settings: EvalSettings) -> EvalReport:
    """Run the whole evaluation and write its outputs; see the module docstring."""
    import torch

    before = torch.get_num_threads()
    threads = choose_threads(settings.threads)
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        plan = plan_evaluation(settings)
        return finish(plan, merge(run_images(plan), plan.spec.codecs), threads=threads, start=start)
    finally:
        torch.set_num_threads(before)


@dataclass
class EvalPlan:
    """Everything decided before the first image: images, usable codecs and metrics, points."""

    settings: EvalSettings
    out: Path
    images: list[Path]
    metrics: list[Metric]
    codecs: list[EvalCodec]  # run order: the size-matched reference first, then ours, then classical
    reference: PresetCodec | None
    points: dict[str, list[Any]]
    notices: list[str]

    @property
    def metric_names(self) -> list[str]:
        """The metric columns (a metric may give several, e.g. Butteraugli's max and 3-norm)."""
        return [c for m in self.metrics for c in m.column_names()]

    @property
    def spec(self) -> EvalSpec:
        """The picklable per-image description a worker rebuilds an :class:`ImageEvaluator` from."""
        return EvalSpec(
            codecs=tuple(c.name for c in self.codecs), points=self.points, metrics=tuple(m.name for m in self.metrics),
            runtime=dict(self.settings.runtime), reference=self.reference.name if self.reference else None,
            save_images=str(self.settings.save_images) if self.settings.save_images is not None else None,
        )

    @property
    def directions(self) -> dict[str, bool]:
        """``higher_is_better`` of every metric column."""
        return {c: m.higher_is_better for m in self.metrics for c in m.column_names()}


def plan_evaluation(settings: EvalSettings) -> EvalPlan:
    """Check the output folder, list the images, load metrics and codecs (notices for those that cannot run)."""
    out = Path(settings.out)
    if (out / "per_image.csv").exists() and not settings.force:
        raise OutputExistsError(f"{out} already holds an evaluation; pass --force to overwrite it")
    images = list_images(settings.dataset, limit=settings.limit or None)
    if not settings.codecs:
        raise StageConfigError("no codecs to evaluate")
    metrics, notices = load_metrics(list(settings.metrics) if settings.metrics else None)
    if not metrics:
        raise StageConfigError("no usable metric: " + "; ".join(notices))
    codecs, codec_notices = _usable_codecs(settings.codecs, settings.runtime)
    notices += codec_notices
    reference = _size_matched_reference(codecs, settings) if settings.size_matched else None
    ours = [c for c in codecs if isinstance(c, PresetCodec)]
    classical = [c for c in codecs if isinstance(c, ClassicalCodec)]
    order: list[EvalCodec] = ([reference] if reference else []) + [c for c in ours if c is not reference] + classical
    points = {c.name: _points_for(c, settings.points) for c in order}
    return EvalPlan(settings, out, images, metrics, order, reference, points, notices)


def _usable_codecs(names: Sequence[str], runtime: Mapping[str, Any]) -> tuple[list[EvalCodec], list[str]]:
    """Each distinct codec that can run here (loading its weights), and a notice for each that cannot."""
    codecs: list[EvalCodec] = []
    notices: list[str] = []
    for name in dict.fromkeys(names):
        codec = make_codec(name, **runtime)
        reason = codec.unavailable_reason()
        if reason:
            notices.append(f"codec {name!r} skipped: {reason}")
        else:
            codecs.append(codec)
    return codecs, notices


def _size_matched_reference(codecs: Sequence[EvalCodec], settings: EvalSettings) -> PresetCodec:
    """Our preset whose file sizes the classical codecs match: ``--match``, else the first of ours."""
    ours = [c for c in codecs if isinstance(c, PresetCodec)]
    wanted = settings.match or (ours[0].name if ours else None)
    reference = next((c for c in ours if c.name == wanted), None)
    if reference is None:
        raise StageConfigError(
            "size-matched mode needs one of our presets among the usable codecs"
            + (f" (asked to match {wanted!r})" if wanted else "")
        )
    return reference


def run_images(plan: EvalPlan) -> list[ImageResult]:
    """Every image through one :class:`ImageEvaluator`, in order, with a progress bar."""
    from tqdm import tqdm

    evaluator = ImageEvaluator(plan.codecs, plan.metrics, plan.points, plan.reference, plan.settings.save_images)
    bar = tqdm(total=len(plan.images) * len(plan.codecs), unit="run", desc="eval", disable=not plan.settings.progress, dynamic_ncols=True)

    def progress(done: int, label: str) -> None:
        if done:
            bar.update(done)
        else:
            bar.set_postfix_str(label)

    try:
        return [evaluator(path, progress) for path in plan.images]
    finally:
        bar.close()


def finish(plan: EvalPlan, merged: ImageResult, *, threads: int, start: float) -> EvalReport:
    """Curves, BD-rates, the size-matched table and every output file from all images' merged results."""
    rows, failures, timing = merged.rows, merged.failures, merged.timing
    notices = list(plan.notices)
    results = _results(plan, rows, notices)
    metric_names = plan.metric_names
    anchor = plan.settings.anchor or ("jpeg" if "jpeg" in results else next(iter(results), None))
    bd = bd_rate_table(results, metric_names, anchor) if anchor in results else {"anchor": anchor, "bd_rate": {}, "notes": ["anchor has no curve"]}
    files = write_outputs(plan.out, results, rows, metric_names, bd)
    table = _size_matched_table(plan, merged) if plan.reference is not None else None
    if table is not None:
        files += size_matched.write(plan.out, table)
    files += [Path(f) for f in merged.files]
    seconds = time.perf_counter() - start
    summary = {
        "dataset": str(plan.settings.dataset), "images": len(plan.images), "codecs": [c.name for c in plan.codecs],
        "points": plan.points, "size_matched": plan.reference.name if plan.reference else None, "metrics": metric_names,
        "torch_threads": threads, "notices": notices, "failures": failures, "timing_s": dict(timing), "total_s": seconds,
    }
    (plan.out / "eval.json").write_text(json.dumps(summary, indent=2, default=str))
    files.append(plan.out / "eval.json")
    return EvalReport(results, rows, bd, notices, failures, files, seconds, plan.out, table)


def _size_matched_table(plan: EvalPlan, merged: ImageResult) -> dict[str, Any]:
    """:func:`.size_matched.summarize` for this plan's codecs."""
    assert plan.reference is not None
    ours = [c.name for c in plan.codecs if isinstance(c, PresetCodec) and c is not plan.reference]
    matched = [c.name for c in plan.codecs if isinstance(c, ClassicalCodec)]
    return size_matched.summarize(merged.rows, merged.unmatched, plan.reference.name, plan.reference.param_name, ours, matched, plan.directions)


def _results(plan: EvalPlan, rows: list[dict[str, Any]], notices: list[str]) -> dict[str, dict[str, Any]]:
    """One CompressAI-schema result per codec with rows; a notice for each without."""
    results: dict[str, dict[str, Any]] = {}
    for codec in plan.codecs:
        mine = [r for r in rows if r["codec"] == codec.name]
        if not mine:
            notices.append(f"codec {codec.name!r}: no successful image, no curve")
            continue
        desc = codec.description or codec.name
        if isinstance(codec, ClassicalCodec) and plan.reference is not None:
            desc += f"; size-matched: per image, the highest quality whose file is at most {plan.reference.name}'s"
        results[codec.name] = aggregate(mine, codec, plan.metric_names, desc)
    return results


def write_outputs(out: Path, results: Mapping[str, Any], rows: list[dict[str, Any]], metric_names: list[str], bd: Mapping[str, Any]) -> list[Path]:
    from .plot import plot_rd

    out.mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(exist_ok=True)
    files: list[Path] = []
    for name, result in results.items():
        path = out / "results" / f"{_safe_name(name)}.json"
        path.write_text(json.dumps(result, indent=2))
        files.append(path)
    csv_path = out / "per_image.csv"
    columns = ["codec", "image", "width", "height", "point", "param", "bytes", "target_bytes", "bpp", *metric_names]
    if any("decoded_png" in r for r in rows):  # --save-images
        columns.append("decoded_png")
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    files.append(csv_path)
    (out / "bd_rate.json").write_text(json.dumps(bd, indent=2))
    files.append(out / "bd_rate.json")
    for m in metric_names:
        files.append(plot_rd(results, m, out / f"rd-{_safe_name(m)}.png"))
    return files


def format_report(report: EvalReport, max_lines: int | None = 20) -> str:
    """The human summary the CLI prints: curves, BD-rates, notices, failures (``max_lines`` of them; None: all), files."""
    lines = []
    for name, result in report.results.items():
        r = result["results"]
        pts = ", ".join(f"{b:.3f}" for b in r["bpp"] if b is not None)
        psnr = r.get("psnr-rgb")
        extra = f"; psnr-rgb {', '.join(f'{v:.2f}' for v in psnr if v is not None)}" if psnr else ""
        lines.append(f"{name}: bpp {pts}{extra}")
    bd = report.bd_rates
    if bd.get("bd_rate"):
        lines.append(f"BD-rate vs {bd['anchor']} (%, negative = fewer bits):")
        for name, row in bd["bd_rate"].items():
            cells = ", ".join(f"{m} {v:+.2f}" if v is not None else f"{m} n/a" for m, v in row.items())
            lines.append(f"  {name}: {cells}")
    if report.size_matched:
        lines.append(size_matched.to_markdown(report.size_matched))
    for n in report.notices:
        lines.append(f"notice: {n}")
    if report.failures:
        lines.append(f"{len(report.failures)} failure(s):")
        lines += [f"  {f}" for f in report.failures[:max_lines]]
        if max_lines is not None and len(report.failures) > max_lines:
            lines.append(f"  ... and {len(report.failures) - max_lines} more (see eval.json)")
    lines.append(f"wrote {len(report.files)} files to {report.out} in {report.seconds:.1f} s")
    return "\n".join(lines)
