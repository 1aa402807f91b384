"""``latentcodec eval --ray``: the per-image work of the RD evaluation on a Ray actor pool.

The run keeps the local run's three steps (:mod:`latentcodec.eval.runner`): the driver
plans (:func:`~latentcodec.eval.runner.plan_evaluation`), each actor rebuilds an
:class:`~latentcodec.eval.per_image.ImageEvaluator` from the picklable ``plan.spec`` and
evaluates its share of the images, and the driver puts the results back in image order,
merges them and writes every file with :func:`~latentcodec.eval.runner.finish`; so the
JSON, CSV and plots are the local run's.  An image Ray could not finish (its worker lost
beyond the retries) is listed among the failures, like an image that cannot be read.
"""

from __future__ import annotations

import pickle
import time
from typing import TYPE_CHECKING, Any

from .pool import PoolOptions, brief, driver_cwd, enter_driver_cwd, lose_blocks_not_jobs, map_batches

if TYPE_CHECKING:  # pragma: no cover
    from ..eval.per_image import EvalSpec, ImageResult
    from ..eval.runner import EvalReport, EvalSettings


class _EvalActor:
    """One Ray actor: one :class:`ImageEvaluator` (codecs and metrics loaded once), one image per row."""

    def __init__(self, spec: "EvalSpec", threads: int, cwd: str | None) -> None:
        import torch

        from ..eval.per_image import ImageEvaluator

        enter_driver_cwd(cwd)
        torch.set_num_threads(threads)
        self.evaluator = ImageEvaluator.from_spec(spec)

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        results = [pickle.dumps(self.evaluator(str(path))) for path in rows["path"]]
        return {"index": np.asarray(rows["index"], dtype=np.int64), "result": np.array(results, dtype=object)}


def evaluate(settings: "EvalSettings", pool: PoolOptions | None = None) -> "EvalReport":
    """:func:`latentcodec.eval.runner.evaluate` with the images spread over a Ray actor pool (Ray initialised)."""
    import ray
    from tqdm import tqdm

    from ..eval.per_image import ImageResult, merge
    from ..eval.runner import finish, plan_evaluation

    pool = pool or PoolOptions()
    start = time.perf_counter()
    plan = plan_evaluation(settings)
    threads = settings.threads or max(1, int(pool.num_cpus))
    results: list[ImageResult | None] = [None] * len(plan.images)
    lost: str | None = None
    if plan.images:
        per_call = pool.images_per_call()
        calls = -(-len(plan.images) // per_call)
        rows = [{"index": i, "path": str(path)} for i, path in enumerate(plan.images)]
        with tqdm(total=len(rows), unit="img", desc="eval", disable=not settings.progress, dynamic_ncols=True) as bar:
            try:
                with lose_blocks_not_jobs():  # an image whose worker died beyond the retries is lost, not the run
                    source = ray.data.from_items(rows, override_num_blocks=calls)
                    ds = map_batches(source, _EvalActor, {"spec": plan.spec, "threads": threads, "cwd": driver_cwd()}, pool, calls)
                    for row in ds.iter_rows():
                        results[int(row["index"])] = pickle.loads(row["result"])  # noqa: S301 - our own actors' results
                        bar.update(1)
            except Exception as exc:  # noqa: BLE001 - the images left are listed as failures
                lost = brief(exc)
    why = lost or "its worker process died, and so did every retry"
    ordered = [
        r if r is not None else ImageResult(str(path), failures=[f"{path.name}: lost with a Ray worker: {why}"])
        for r, path in zip(results, plan.images, strict=True)
    ]
    return finish(plan, merge(ordered, plan.spec.codecs), threads=threads, start=start)
