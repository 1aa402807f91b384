"""Throughput of ``--ray`` (1 and 2 local actors) against the single-process batch mode.

The same Kodak images are compressed three ways, each writing its own folder: the
single-process batch worker (:class:`latentcodec.batch.CompressWorker`, what
``latentcodec compress DIR -o OUT`` runs), and :class:`latentcodec.distributed.RayJobRunner`
(what ``--ray`` runs) on a local Ray instance with a pool of 1 and of 2 actors of one CPU
each.  Each time is end to end for the run: building the codec (locally) or starting the
pool (each actor imports torch and loads TAESD), then every image; the Ray instance itself
is started once beforehand and not counted.  Every stream must be byte-identical to the
local batch's.  Prints images/s side by side; stores them in ``benchmark.extra_info``.  Run::

    .venv/bin/python benchmarks/bench_ray.py
    .venv/bin/python -m pytest benchmarks/bench_ray.py --benchmark-enable -s

Environment: ``LATENTCODEC_BENCH_IMAGES`` (default 8), ``LATENTCODEC_BENCH_CPUS`` (CPUs
given to Ray, default: all of this machine's), ``LATENTCODEC_SHARED`` (default ``../shared``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTCODEC_SHARED", ROOT.parent / "shared"))
KODAK = SHARED / "datasets" / "kodak"
MODEL = str(SHARED / "models" / "taesd")
IMAGES = int(os.environ.get("LATENTCODEC_BENCH_IMAGES", "8"))
CPUS = int(os.environ.get("LATENTCODEC_BENCH_CPUS", str(os.cpu_count() or 1)))


def measure(work: Path, n: int = IMAGES) -> dict[str, Any]:
    """Seconds and images/s of the local batch and of 1 and 2 Ray actors; raises if a stream differs."""
    import ray
    import torch

    from latentcodec import Codec
    from latentcodec.batch import CompressWorker, plan_jobs
    from latentcodec.distributed import PoolOptions, RayJobRunner
    from latentcodec.distributed.pool import quiet_data

    images = sorted(KODAK.glob("*.png"))[:n]
    out: dict[str, Any] = {"images": len(images), "cpus": CPUS, "local_torch_threads": torch.get_num_threads()}

    def run(label: str, make: Any) -> None:
        folder = work / label
        jobs = plan_jobs([str(p) for p in images], str(folder) + "/", mode="compress")
        t0 = time.perf_counter()
        records = make().process(jobs)
        seconds = time.perf_counter() - t0
        bad = [f"{r.input}: {r.error}" for r in records if r.status != "ok"]
        if bad:
            raise AssertionError(f"{label}: {bad}")
        if label != "local":
            for image in images:
                if (folder / f"{image.stem}.lc").read_bytes() != (work / "local" / f"{image.stem}.lc").read_bytes():
                    raise AssertionError(f"{label}: {image.name} differs from the local batch's stream")
        out[f"{label}_s"], out[f"{label}_images_per_s"] = seconds, len(images) / seconds

    run("local", lambda: CompressWorker(Codec.from_preset("taesd-ans", model=MODEL, device="cpu")))
    config = Codec.from_preset("taesd-ans", model=MODEL, device="cpu").get_config()
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        quiet_data()
        for actors in (1, 2):
            run(f"ray{actors}", lambda actors=actors: RayJobRunner("compress", {"existing": "error"}, PoolOptions(actors=actors), codec=config))
    finally:
        ray.shutdown()
    out["bytes"] = sum((work / "local" / f"{image.stem}.lc").stat().st_size for image in images)
    return out


def report(r: dict[str, Any]) -> str:
    n = r["images"]
    rows = [
        ("single-process batch", "local", f"{r['local_torch_threads']} torch threads"),
        ("--ray, 1 actor", "ray1", "1 CPU, 1 torch thread"),
        ("--ray, 2 actors", "ray2", "1 CPU, 1 torch thread each"),
    ]
    lines = [f"{n} Kodak images (768x512), TAESD on the CPU, taesd-ans, {r['bytes']} bytes in all; Ray given {r['cpus']} CPUs; every stream byte-identical"]
    lines += [f"  {name:22s} {r[f'{key}_s']:7.1f} s  {r[f'{key}_images_per_s']:6.2f} images/s  ({note})" for name, key, note in rows]
    per_s = {key: r[f"{key}_images_per_s"] for key in ("local", "ray1", "ray2")}
    lines.append(f"  2 actors / 1 actor: {per_s['ray2'] / per_s['ray1']:.2f}x; 2 actors / local: {per_s['ray2'] / per_s['local']:.2f}x")
    return "\n".join(lines)


def test_ray_actors_against_the_local_batch(benchmark: Any) -> None:
    import pytest

    pytest.importorskip("ray")
    with tempfile.TemporaryDirectory() as tmp:
        result = benchmark.pedantic(measure, args=(Path(tmp),), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print("\n" + report(result))
    assert all(result[f"{k}_images_per_s"] > 0 for k in ("local", "ray1", "ray2"))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(report(measure(Path(tmp))))
