"""Comparison sheets: the original and every codec's decode of one image side by side.

One PNG per image (``latentcodec eval --save-images DIR``): a row per rate point of the
reference codec, a panel per codec with the whole image, a zoomed crop and, under it, the
point's bytes, bpp and metrics.  The crop is the same for every panel: the window of the
original with the most detail (largest mean squared high-pass, so texture beats a single
edge between flat areas), shown with nearest-neighbour zoom so coding artefacts stay
visible.  A JSON sidecar records the layout (panel boxes, crop, files) for tools and tests.
Pillow draws it; nothing here needs matplotlib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np

THUMB = 256  # the whole image fits in THUMB x THUMB (never enlarged)
ZOOM_SIDE = 256  # the zoomed crop is ZOOM_SIDE x ZOOM_SIDE
MARGIN, PAD, BORDER_WIDTH, LINE = 8, 6, 2, 16
BACKGROUND, PANEL, BORDER, TEXT, CROP_MARK = (255, 255, 255), (245, 245, 245), (60, 60, 60), (0, 0, 0), (230, 30, 30)


@dataclass
class Panel:
    """One cell: a title, the decoded image (None: the codec made no file) and text lines under it."""

    title: str
    image: np.ndarray | None
    lines: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # copied into the sidecar


def detail_crop(image: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the ``side`` x ``side`` window with the most high-frequency energy.

    >>> flat = np.zeros((64, 64, 3), np.uint8); flat[40:56, 8:24] = np.indices((16, 16)).sum(0)[..., None] % 2 * 255
    >>> detail_crop(flat, 16)
    (8, 40, 16, 16)
    """
    h, w = image.shape[:2]
    side = min(side, h, w)
    luma = image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    padded = np.pad(luma, 1, mode="edge")
    box = sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0
    energy = (luma - box) ** 2
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    stride = max(1, side // 8)
    best, best_xy = -1.0, (0, 0)
    for y in range(0, h - side + 1, stride):
        for x in range(0, w - side + 1, stride):
            total = integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]
            if total > best:
                best, best_xy = total, (x, y)
    return best_xy[0], best_xy[1], side, side


def crop_side(image: np.ndarray) -> int:
    """A quarter of the shorter side, 32 to 128 pixels (at most the image)."""
    return min(min(image.shape[:2]), max(32, min(128, min(image.shape[:2]) // 4)))


def _font(size: int = 13) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def draw_sheet(original: np.ndarray, rows: Sequence[tuple[str, Sequence[Panel]]], path: str | Path) -> dict[str, Any]:
    """Draw ``rows`` (a label and its panels) under one crop; write ``path`` and its ``.json`` layout -> the layout."""
    from PIL import Image, ImageDraw

    crop = detail_crop(original, crop_side(original))
    h, w = original.shape[:2]
    scale = min(1.0, THUMB / w, THUMB / h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    pw = PAD * 2 + max(tw, ZOOM_SIDE)
    font = _font()
    text = {id(p): _wrap([p.title, *p.lines], font, pw - 2 * PAD) for _, panels in rows for p in panels}
    lines = max((len(t) for t in text.values()), default=0)
    ph = PAD * 4 + th + ZOOM_SIDE + lines * LINE
    cols = max((len(panels) for _, panels in rows), default=0)
    sheet_w = MARGIN + cols * (pw + MARGIN)
    sheet_h = MARGIN + len(rows) * (ph + LINE + MARGIN)
    sheet = Image.new("RGB", (sheet_w, sheet_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    layout: dict[str, Any] = {
        "image_size": [w, h], "crop": list(crop), "panel_size": [pw, ph], "sheet_size": [sheet_w, sheet_h],
        "thumb_size": [tw, th], "zoom": {"offset": [PAD, PAD + th + PAD], "side": ZOOM_SIDE},
        "border": {"color": list(BORDER), "width": BORDER_WIDTH}, "rows": [],
    }
    for r, (label, panels) in enumerate(rows):
        top = MARGIN + r * (ph + LINE + MARGIN)
        draw.text((MARGIN, top), label, fill=TEXT, font=font)
        entry: dict[str, Any] = {"label": label, "panels": []}
        for c, panel in enumerate(panels):
            box = (MARGIN + c * (pw + MARGIN), top + LINE, pw, ph)
            _draw_panel(sheet, draw, font, panel, text[id(panel)], box, crop, (tw, th), scale)
            entry["panels"].append({"title": panel.title, "box": list(box), **panel.info})
        layout["rows"].append(entry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, compress_level=6)
    path.with_suffix(".json").write_text(json.dumps(layout, indent=1, default=str))
    return layout


def _wrap(lines: Sequence[str], font: Any, width: int) -> list[str]:
    """Break lines that are wider than ``width`` pixels, at spaces, commas or anywhere."""
    out: list[str] = []
    for line in lines:
        while font.getlength(line) > width:
            cut = max(i for i in range(1, len(line)) if font.getlength(line[:i]) <= width)
            soft = max(line.rfind(" ", 0, cut + 1), line.rfind(",", 0, cut) + 1, line.rfind(":", 0, cut) + 1)
            cut = soft if soft > 0 else cut
            out.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        out.append(line)
    return out


def _draw_panel(
    sheet: Any, draw: Any, font: Any, panel: Panel, text: list[str], box: tuple[int, int, int, int], crop: tuple[int, int, int, int], thumb: tuple[int, int], scale: float
) -> None:
    from PIL import Image

    x, y, pw, ph = box
    draw.rectangle((x, y, x + pw - 1, y + ph - 1), fill=PANEL, outline=BORDER, width=BORDER_WIDTH)
    ix, iy = x + PAD, y + PAD
    if panel.image is not None:
        im = Image.fromarray(np.ascontiguousarray(panel.image[..., :3]), "RGB")
        sheet.paste(im if scale == 1.0 else im.resize(thumb, Image.Resampling.LANCZOS), (ix, iy))
        cx, cy, cw, ch = crop
        draw.rectangle((ix + round(cx * scale), iy + round(cy * scale), ix + round((cx + cw) * scale), iy + round((cy + ch) * scale)), outline=CROP_MARK)
        zoom = im.crop((cx, cy, cx + cw, cy + ch)).resize((ZOOM_SIDE, ZOOM_SIDE), Image.Resampling.NEAREST)
        sheet.paste(zoom, (ix, iy + thumb[1] + PAD))
    else:
        draw.text((ix, iy), "no file", fill=TEXT, font=font)
    ty = iy + thumb[1] + PAD + ZOOM_SIDE + PAD
    for i, line in enumerate(text):
        draw.text((ix, ty + i * LINE), line, fill=TEXT, font=font)


def comparison_rows(
    original: np.ndarray, decoded: Sequence[tuple[dict[str, Any], np.ndarray]], reference: str, codecs: Sequence[str],
    param_names: dict[str, str], size_matched: Sequence[str], unmatched: Collection[tuple[str, Any]], metric_columns: Sequence[str],
) -> list[tuple[str, list[Panel]]]:
    """One sheet row per point of ``reference``: the original, then each codec's closest point.

    ``unmatched`` holds the (codec, point) pairs for which no file fitted.  A size-matched
    codec shows its file for that point (or "no file" where none fitted); any
    other codec shows the same point where it has one with the same rate parameter (our
    presets at one step), else its point nearest in bytes.
    """
    h, w = original.shape[:2]
    by_codec: dict[str, list[tuple[dict[str, Any], np.ndarray]]] = {}
    for row, image in decoded:
        by_codec.setdefault(row["codec"], []).append((row, image))
    rows = []
    for ref_row, _ in by_codec.get(reference, []):
        label = f"{reference} {param_names.get(reference, 'point')} {ref_row['point']}: {ref_row['bytes']} bytes, {ref_row['bpp']:.4f} bpp"
        panels = [Panel("original", original, [f"{w} x {h} pixels"], {"codec": None})]
        for name in codecs:
            mine = by_codec.get(name, [])
            same = [d for d in mine if d[0]["point"] == ref_row["point"] and (name in size_matched or param_names.get(name) == param_names.get(reference))]
            if same:
                pick = same[0]
            elif name in size_matched or not mine:
                why = f"none fits in {ref_row['bytes']} bytes" if (name, ref_row["point"]) in unmatched else "it failed on this image"
                panels.append(Panel(name, None, [f"no file: {why}"], {"codec": name}))
                continue
            else:
                pick = min(mine, key=lambda d: abs(np.log(d[0]["bytes"] / ref_row["bytes"])))
            row, image = pick
            lines = [f"{param_names.get(name, 'point')} {row['param']}", f"{row['bytes']} bytes, {row['bpp']:.4f} bpp"]
            lines += [f"{m} {row[m]:.4g}" for m in metric_columns if row.get(m) is not None]
            info = {"codec": name, "point": row["point"], "param": row["param"], "bytes": row["bytes"], "file": row.get("decoded_png")}
            panels.append(Panel(name, image, lines, info))
        rows.append((label, panels))
    return rows
