"""latentcodec.batch: planning, workers, existing outputs, the manifest, interrupts.

A weight-free toy transform keeps these fast; the real TAESD batch runs are in
test_cli.py and benchmarks/bench_batch.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentcodec import Codec, bitstream
from latentcodec.batch import CompressWorker, Job, ManifestWriter, Record, plan_jobs, read_manifest, summary
from latentcodec.entropy.ans import ANSCoder
from latentcodec.errors import BatchPlanError, OutputExistsError
from latentcodec.quantizers.uniform import UniformQuantizer
from latentcodec.stages import Transform


class PoolTransform(Transform):
    """8x8 average pooling into 4 channels: deterministic, weight-free, batch-invariant."""

    name = "taesd"  # a registered name, so the streams' chains are ordinary
    latent_channels, downsampling_factor = 4, 8  # type: ignore[assignment]

    def __init__(self) -> None:
        self.calls: list[int] = []  # batch size of every analysis

    def analysis(self, image: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(image.shape[0]))
        h, w = image.shape[-2:]
        x = torch.nn.functional.pad(image, (0, (-w) % 8, 0, (-h) % 8), mode="replicate")
        z = torch.nn.functional.avg_pool2d(x, 8) * 8.0
        return torch.cat([z, z.mean(1, keepdim=True)], 1)

    def synthesis(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(latent[:, :3] / 8.0, scale_factor=8.0)

    def fingerprint(self) -> bytes:
        return b"pool"


class DriftingTransform(PoolTransform):
    """Like PoolTransform, but batches of more than one image differ in the last bits."""

    def analysis(self, image: torch.Tensor) -> torch.Tensor:
        z = super().analysis(image)
        return z + 1e-6 if image.shape[0] > 1 else z


def toy_codec(transform: Transform | None = None) -> Codec:
    return Codec(transform or PoolTransform(), UniformQuantizer(step=0.05), ANSCoder())


def photos(root: Path) -> Path:
    """root/photos with a.png (48x32), b.png (48x32), sub/c.jpg (32x48), sub/deeper/d.png, a hidden file, a non-image."""
    rng = np.random.default_rng(0)
    base = root / "photos"
    (base / "sub" / "deeper").mkdir(parents=True)
    for rel, size in (("a.png", (48, 32)), ("b.png", (48, 32)), ("sub/c.jpg", (32, 48)), ("sub/deeper/d.png", (48, 32))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(base / rel)
    (base / ".hidden.png").write_bytes(b"not listed")
    (base / "notes.txt").write_text("not an image")
    return base


def test_plan_mirrors_folders_and_names_files(tmp_path: Path) -> None:
    base = photos(tmp_path)
    extra = tmp_path / "x.webp"
    Image.new("RGB", (8, 8)).save(extra)
    jobs = plan_jobs([base, extra], tmp_path / "out", mode="compress")
    assert [(Path(j.input).relative_to(tmp_path).as_posix(), Path(j.output).relative_to(tmp_path).as_posix()) for j in jobs] == [
        ("photos/a.png", "out/a.lc"),
        ("photos/b.png", "out/b.lc"),
        ("photos/sub/c.jpg", "out/sub/c.lc"),
        ("photos/sub/deeper/d.png", "out/sub/deeper/d.lc"),
        ("x.webp", "out/x.lc"),
    ]
    top = plan_jobs([base], tmp_path / "out", mode="compress", recursive=False)
    assert [Path(j.output).name for j in top] == ["a.lc", "b.lc"]
    # one file and -o FILE is one job writing exactly that file; a folder target names it
    assert plan_jobs([base / "a.png"], tmp_path / "k.lc", mode="compress") == [Job(str(base / "a.png"), str(tmp_path / "k.lc"))]
    assert plan_jobs([base / "a.png"], f"{tmp_path}/out/", mode="compress")[0].output == str(tmp_path / "out" / "a.lc")
    assert plan_jobs(["-"], "-", mode="compress") == [Job("-", "-")]
    (tmp_path / "streams").mkdir()
    (tmp_path / "streams" / "a.lc").write_bytes(b"x")
    assert plan_jobs([tmp_path / "streams"], tmp_path / "png", mode="decompress") == [Job(str(tmp_path / "streams" / "a.lc"), str(tmp_path / "png" / "a.png"))]


def test_plan_refuses_collisions_and_misused_stdio(tmp_path: Path) -> None:
    for name in ("a.png", "a.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    with pytest.raises(BatchPlanError, match="a.png and .*a.jpg would both write"):
        plan_jobs([tmp_path / "a.png", tmp_path / "a.jpg"], tmp_path / "out", mode="compress")
    with pytest.raises(BatchPlanError, match="standard input or output"):
        plan_jobs(["-", tmp_path / "a.png"], tmp_path / "out", mode="compress")
    with pytest.raises(BatchPlanError, match="standard input or output"):
        plan_jobs([tmp_path], "-", mode="compress")
    (tmp_path / "file.lc").write_bytes(b"")
    with pytest.raises(BatchPlanError, match="is a file"):
        plan_jobs([tmp_path / "a.png", tmp_path / "a.jpg"], tmp_path / "file.lc", mode="compress")


def test_worker_batches_equal_sizes_and_reports_bad_files(tmp_path: Path) -> None:
    base = photos(tmp_path)
    bad = base / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    jobs = plan_jobs([base], tmp_path / "out", mode="compress")
    transform = PoolTransform()
    seen: list[Record] = []
    records = CompressWorker(toy_codec(transform), batch_size=4).process(jobs, on_record=seen.append)
    assert [r.input for r in records] == [j.input for j in jobs]  # job order, whatever the processing order
    assert sorted(r.input for r in seen) == sorted(j.input for j in jobs)
    failed = [r for r in records if r.status == "failed"]
    assert [r.input for r in failed] == [str(bad)] and "cannot read" in (failed[0].error or "")
    assert summary(records) == {"ok": 4, "skipped": 0, "failed": 1}
    # the three 48x32 images went through the transform together (plus one single-image check)
    assert sorted(transform.calls) == [1, 1, 3]
    for r in records:
        if r.status == "ok":
            data = Path(r.output).read_bytes()
            assert r.bytes == len(data) and r.parameter == "step" and r.value == pytest.approx(0.05)
            assert r.bpp == pytest.approx(8 * len(data) / (bitstream.read(data).width * bitstream.read(data).height))
    # byte-identical to one image at a time
    single = toy_codec()
    for r in records:
        if r.status == "ok":
            assert Path(r.output).read_bytes() == single.compress(r.input)
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary files left


def test_batches_that_drift_fall_back_to_single_images(tmp_path: Path) -> None:
    images = [torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(i)) for i in range(5)]
    drifting = toy_codec(DriftingTransform())
    batched = drifting.compress_many(images, batch_size=4)
    assert batched == [toy_codec().compress(im) for im in images]
    assert list(drifting._batch_exact.values()) == [False]  # checked once, then one at a time
    steady = toy_codec(PoolTransform())
    assert steady.compress_many(images, batch_size=4) == batched
    assert list(steady._batch_exact.values()) == [True]


def test_existing_outputs_error_skip_or_overwrite(tmp_path: Path) -> None:
    base = photos(tmp_path)
    jobs = plan_jobs([base / "a.png", base / "b.png"], tmp_path / "out", mode="compress")
    (tmp_path / "out").mkdir()
    Path(jobs[0].output).write_bytes(b"precious")
    records = CompressWorker(toy_codec()).process(jobs)
    assert [r.status for r in records] == ["failed", "ok"] and "--force" in (records[0].error or "")
    assert Path(jobs[0].output).read_bytes() == b"precious"
    b_before = Path(jobs[1].output).stat().st_mtime_ns
    records = CompressWorker(toy_codec(), existing="skip").process(jobs)
    assert [r.status for r in records] == ["skipped", "skipped"]
    assert Path(jobs[0].output).read_bytes() == b"precious" and Path(jobs[1].output).stat().st_mtime_ns == b_before
    records = CompressWorker(toy_codec(), existing="overwrite").process(jobs)
    assert [r.status for r in records] == ["ok", "ok"] and Path(jobs[0].output).read_bytes()[:3] == bitstream.MAGIC


def test_worker_from_a_config_dict(tmp_path: Path) -> None:
    """What a Ray actor gets: plain values, rebuilt into a codec in the worker."""
    base = photos(tmp_path)
    codec = toy_codec()
    config = codec.get_config()
    assert json.loads(json.dumps(config)) == config
    worker = CompressWorker({**config, "transform": {"name": "taesd", "config": {"model": "unused"}}})
    assert worker.codec.quantizer.step == pytest.approx(0.05)
    row = Job(str(base / "a.png"), str(tmp_path / "a.lc")).to_dict()
    assert Job.from_dict(row).input.endswith("a.png")


def test_interrupt_leaves_no_partial_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = photos(tmp_path)
    jobs = plan_jobs([base], tmp_path / "out", mode="compress")
    writes = 0
    real_fdopen = os.fdopen

    def interrupted_fdopen(fd: int, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        fh = real_fdopen(fd, *args, **kwargs)  # type: ignore[arg-type]
        if writes == 2:  # Ctrl-C while the second output is half written
            fh.write(b"half")
            fh.close()
            raise KeyboardInterrupt
        return fh

    monkeypatch.setattr("latentcodec.imageio.files.os.fdopen", interrupted_fdopen)
    with pytest.raises(KeyboardInterrupt):
        CompressWorker(toy_codec()).process(jobs)
    left = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert len(left) == 1 and not left[0].startswith(".")  # the finished one, and no temporary file
    assert bitstream.read((tmp_path / "out" / left[0]).read_bytes())


def test_manifest_lines_append_and_refuse(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "m.jsonl"
    a = Record("a.png", "a.lc", "ok", 10, 0.5, "step", 0.5, 0.25, warnings=["w"], traceback="not written")
    b = Record("b.png", "b.lc", "failed", error="bad")
    with ManifestWriter(path) as m:
        m.write(a)
    assert set(json.loads(path.read_text())) == {"input", "output", "status", "bytes", "bpp", "parameter", "value", "seconds", "error", "warnings"}
    with pytest.raises(OutputExistsError, match="--force"):
        ManifestWriter(path)
    with ManifestWriter(path, existing="skip") as m:
        m.write(b)
    assert [r.input for r in read_manifest(path)] == ["a.png", "b.png"]
    assert read_manifest(path)[0] == a  # the traceback is not part of the record's identity
    with ManifestWriter(path, existing="overwrite") as m:
        m.write(b)
    assert read_manifest(path) == [b]
