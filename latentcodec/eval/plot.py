"""Rate–distortion plots: one PNG per metric, every codec a curve (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

METRIC_LABELS = {
    "psnr-rgb": "PSNR-RGB [dB]",
    "psnr-y": "PSNR-Y [dB]",
    "ms-ssim": "MS-SSIM",
    "butteraugli": "Butteraugli max distance (lower is better)",
    "butteraugli-3norm": "Butteraugli 3-norm (lower is better)",
    "ssimulacra2": "SSIMULACRA2",
    "cvvdp": "ColorVideoVDP [JOD]",
    "ssimulacra": "SSIMULACRA (lower is better)",
    "lpips": "LPIPS (lower is better)",
    "dists": "DISTS (lower is better)",
}


def plot_rd(results: Mapping[str, Mapping[str, Any]], metric: str, path: str | Path, title: str = "") -> Path:
    """Draw ``bpp`` against ``metric`` for every result (CompressAI schema) that has it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    try:
        drawn = 0
        for name, result in results.items():
            r = result["results"]
            if metric not in r or not r.get("bpp"):
                continue
            pairs = [(b, m) for b, m in zip(r["bpp"], r[metric]) if b is not None and m is not None]
            if not pairs:
                continue
            bpp, values = zip(*sorted(pairs))
            ax.plot(bpp, values, marker="o", markersize=4, linewidth=1.5, label=name)
            drawn += 1
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(title or f"rate–distortion: {metric}")
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
