"""Turn ``pytest benchmarks/bench_rd.py --benchmark-json out.json`` into a Markdown table.

Usage: ``python benchmarks/rd_table.py out.json``.
"""

from __future__ import annotations

import json
import sys


def rows(report: dict) -> list[dict]:
    out = []
    for bench in report.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "total_bytes" in info:
            out.append({"name": bench["name"], **info})
    return out


def table(report: dict) -> str:
    lines = [
        "| point | images | total bytes | min-max bytes | bpp | PSNR dB | MS-SSIM | encode s | decode s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows(report):
        lines.append(
            f"| {r['name'].split('[')[-1].rstrip(']')} | {r['images']} | {r['total_bytes']} | {r['min_bytes']}-{r['max_bytes']} "
            f"| {r['mean_bpp']:.4f} | {r['mean_psnr']:.3f} | {r['mean_ms_ssim']:.4f} | {r['mean_encode_s']:.2f} | {r['mean_decode_s']:.2f} |"
        )
    for bench in report.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "target_bytes" in info:
            lines.append(
                f"\nrate control {info['preset']} at {info['target_bytes']} bytes: "
                f"{len(info['sizes'])} images, sizes {info['min_bytes']}..{info['max_bytes']}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: rd_table.py REPORT.json", file=sys.stderr)
        return 2
    with open(args[0]) as fh:
        print(table(json.load(fh)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
