"""Seeded k-means++ / Lloyd palettes over uint8 pixel vectors, optionally in a metric."""

from __future__ import annotations

import numpy as np


def kmeans_palette(points: np.ndarray, k: int, iterations: int = 16, seed: int = 0, metric: np.ndarray | None = None) -> np.ndarray:
    """Up to ``k`` uint8 colours for ``points`` ``(N, C)`` (k-means++ then Lloyd).

    Deterministic for a given input (seeded).  Fewer distinct input colours than ``k``
    are returned as they are.  With ``metric = T`` the clustering minimises ``|T (p - c)|^2``
    (it runs on ``T p`` and maps the centres back).

    >>> import numpy as np
    >>> pts = np.array([[0, 0], [1, 1], [200, 200], [201, 201]], dtype=np.float32)
    >>> kmeans_palette(pts, 2).tolist()
    [[0, 0], [200, 200]]
    """
    pts = np.asarray(points, dtype=np.float64)
    unique = np.unique(np.rint(pts), axis=0)
    if len(unique) <= k:
        return np.clip(unique, 0, 255).astype(np.uint8)
    if metric is not None:
        pts = pts @ metric.T
    rng = np.random.default_rng(seed)
    n = len(pts)
    centers = np.empty((k, pts.shape[1]))
    centers[0] = pts[rng.integers(n)]
    d2 = ((pts - centers[0]) ** 2).sum(1)
    for c in range(1, k):
        centers[c] = pts[rng.choice(n, p=d2 / d2.sum())]
        d2 = np.minimum(d2, ((pts - centers[c]) ** 2).sum(1))
    sq = (pts**2).sum(1)
    for _ in range(iterations):
        dist = sq[:, None] - 2.0 * pts @ centers.T + (centers**2).sum(1)[None]
        labels = dist.argmin(1)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, pts[:, c], minlength=k) for c in range(pts.shape[1])], 1)
        used = counts > 0
        centers[used] = sums[used] / counts[used, None]
        if not used.all():  # re-seed empty clusters at the worst-served points
            far = np.argsort(-dist[np.arange(n), labels], kind="stable")[: int((~used).sum())]
            centers[~used] = pts[far]
    if metric is not None:
        centers = np.linalg.solve(metric, centers.T).T
    return np.unique(np.clip(np.rint(centers), 0, 255), axis=0).astype(np.uint8)
