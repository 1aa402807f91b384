"""The size-matched table: at each of our rate points, every codec on every metric, the winner, the gap to AVIF.

``latentcodec eval --size-matched`` gives each classical codec, image by image, the highest
quality whose file is at most our preset's; this module turns those rows into
``size_matched.json`` and ``size_matched.md`` (one table per rate point of the reference).

* A codec's value on a metric is its mean over the images it made a file for; the table says
  how many that was, and how many it could not make that small (no quality fits) or failed
  on, so no image is dropped silently.
* The winner of a metric is the best mean among the codecs that made every image of that
  point (a codec that skipped the hardest images would otherwise look better); ties share it.
  Where no size-matched codec made every image, there is no winner (the table says so), and
  a codec's "too large" count comes with the mean bpp of its smallest files (lowest quality).
* The gap to AVIF is the mean over the images both made of (codec - AVIF): the sign reads
  with the metric's direction (higher is better for PSNR, MS-SSIM, SSIMULACRA2 and JOD, lower
  for Butteraugli).
* Our other entries (another preset, or the same preset with other options) appear at the
  points they ran with the same rate parameter value; they are not size-matched, so their
  bpp column is theirs (e.g. the bytes an encoder search saves at the same quality).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

ANCHOR = "avif"


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def summarize(
    rows: Sequence[Mapping[str, Any]], unmatched: Sequence[Mapping[str, Any]], reference: str, param_name: str,
    ours: Sequence[str], matched: Sequence[str], directions: Mapping[str, bool],
) -> dict[str, Any]:
    """The table as data.

    ``reference``: the preset matched (its rate parameter is ``param_name``); ``ours``: our
    other entries; ``matched``: the size-matched codecs; ``directions``: each metric column's
    ``higher_is_better``.
    """
    codecs = [reference, *ours, *matched]
    ref_rows = [r for r in rows if r["codec"] == reference]
    points = list(dict.fromkeys(r["point"] for r in ref_rows))
    tables = []
    for point in points:
        images = [r["image"] for r in ref_rows if r["point"] == point]
        at = {name: {r["image"]: r for r in rows if r["codec"] == name and r["point"] == point and r["image"] in images} for name in codecs}
        missing = {name: {u["image"]: u for u in unmatched if u["codec"] == name and u["point"] == point} for name in codecs}
        entries: dict[str, Any] = {}
        for name in codecs:
            made = at[name]
            if not made and name in ours:
                continue  # one of our other entries that did not run at this point
            entry: dict[str, Any] = {
                "images": len(made), "of": len(images), "too_large": len(missing[name]),
                "failed": len(images) - len(made) - len(missing[name]),
                "bytes": _mean([r["bytes"] for r in made.values()]), "bpp": _mean([r["bpp"] for r in made.values()]),
                "metrics": {m: _mean([r.get(m) for r in made.values()]) for m in directions},
                "smallest_bpp": _mean([u.get("smallest_bpp") for u in missing[name].values()]),  # where too large
            }
            if ANCHOR in at and name != ANCHOR:
                both = [i for i in made if i in at[ANCHOR]]
                entry["gap_to_" + ANCHOR] = {
                    m: _mean([_diff(made[i].get(m), at[ANCHOR][i].get(m)) for i in both]) for m in directions
                }
                entry["gap_images"] = len(both)
            entries[name] = entry
        complete = [n for n, e in entries.items() if e["images"] == e["of"] and e["of"] > 0]
        note = None
        if not any(n in matched for n in complete):  # only ours made every image: nothing to win against
            note = "no size-matched codec made a file this small for every image, so there is no winner"
            complete = []
        winners = {m: _winners({n: entries[n]["metrics"][m] for n in complete}, higher) for m, higher in directions.items()}
        tables.append({
            "point": point, "param_name": param_name, "images": len(images),
            "reference_bpp": entries.get(reference, {}).get("bpp"), "codecs": entries, "complete": complete, "winner": winners, "note": note,
        })
    return {
        "reference": reference, "anchor": ANCHOR,
        "metrics": {m: {"higher_is_better": h} for m, h in directions.items()},
        "rule": "classical codecs: per image the highest quality whose file is at most the reference's; "
        "mean over the images a codec made; winner among the codecs that made every image; "
        f"gap = mean over the images both made of (codec - {ANCHOR})",
        "points": tables,
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _winners(values: Mapping[str, float | None], higher: bool) -> list[str]:
    scored = {n: v for n, v in values.items() if v is not None and math.isfinite(v)}
    if not scored:
        return []
    best = max(scored.values()) if higher else min(scored.values())
    return [n for n, v in scored.items() if abs(v - best) <= 1e-12 * max(1.0, abs(best))]


def _cell(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def to_markdown(summary: Mapping[str, Any]) -> str:
    """The tables as GitHub markdown: value (gap to AVIF), winners in bold, coverage per codec."""
    metrics = summary["metrics"]
    arrows = {m: "↑" if info["higher_is_better"] else "↓" for m, info in metrics.items()}
    out = [
        f"# Size-matched comparison against `{summary['reference']}`", "",
        f"Rule: {summary['rule']}. Cells: mean (gap to {summary['anchor'].upper()}); ↑ higher is better, ↓ lower; "
        "**bold**: the winner.", "",
    ]
    for table in summary["points"]:
        ref_bpp = table["reference_bpp"]
        out += [
            f"## {summary['reference']} {table['param_name']} {table['point']}: {_cell(ref_bpp)} bpp, {table['images']} images", "",
            "| codec | images | bpp | " + " | ".join(f"{m} {arrows[m]}" for m in metrics) + " |",
            "|---|---|---|" + "---|" * len(metrics),
        ]
        for name, e in table["codecs"].items():
            cover = f"{e['images']}/{e['of']}"
            notes = []
            if e["too_large"]:
                smallest = f": ≥ {e['smallest_bpp']:.3f} bpp" if e.get("smallest_bpp") is not None else ""
                notes.append(f"{e['too_large']} too large{smallest}")
            if e["failed"]:
                notes.append(f"{e['failed']} failed")
            if notes:
                cover += " (" + ", ".join(notes) + ")"
            cells = []
            for m in metrics:
                text = _cell(e["metrics"][m])
                gap = e.get("gap_to_" + summary["anchor"], {}).get(m)
                if gap is not None:
                    text += f" ({gap:+.3g})"
                if name in table["winner"][m]:
                    text = f"**{text}**"
                cells.append(text)
            out.append(f"| `{name}` | {cover} | {_cell(e['bpp'])} | " + " | ".join(cells) + " |")
        out.append("| winner | | | " + " | ".join(", ".join(f"`{w}`" for w in table["winner"][m]) or "–" for m in metrics) + " |")
        if table.get("note"):
            out += ["", f"{table['note'][0].upper()}{table['note'][1:]}."]
        out.append("")
    return "\n".join(out)


def write(out: Path, summary: Mapping[str, Any]) -> list[Path]:
    """``size_matched.json`` and ``size_matched.md`` in ``out``."""
    json_path, md_path = out / "size_matched.json", out / "size_matched.md"
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    md_path.write_text(to_markdown(summary))
    return [json_path, md_path]
