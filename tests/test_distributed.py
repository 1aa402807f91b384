"""``latentcodec.distributed`` on a local Ray instance: the same streams, files, manifests and
evaluation rows as the single-process batch mode, bad files and dying workers included.

One Ray instance (2 CPUs) for the module; three Kodak images downscaled to 128x96, so the
actors' start-up (torch, TAESD) dominates and the file stays near a minute on 2 cores.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from latentcodec.batch import CompressWorker, Record, plan_jobs, read_manifest
from latentcodec.cli import main

NAMES = ("kodim01.png", "kodim02.png", "kodim03.png")


@pytest.fixture(scope="module")
def ray_local():  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    import logging

    from latentcodec.distributed.pool import quiet_data

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    quiet_data()
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, kodak_dir: Path) -> Path:
    """Three small Kodak images (128x96), a folder of their own."""
    root = tmp_path_factory.mktemp("photos")
    for name in NAMES:
        Image.open(kodak_dir / name).convert("RGB").resize((128, 96), Image.LANCZOS).save(root / name)
    return root


@pytest.fixture(scope="module")
def codec_config(taesd_dir: Path) -> dict[str, Any]:
    from latentcodec import Codec

    return Codec.from_preset("taesd-ans", model=str(taesd_dir), device="cpu").get_config()


@pytest.fixture(scope="module")
def local_streams(photos: Path, codec_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The single-process batch mode's streams, by image name."""
    out = tmp_path_factory.mktemp("local")
    records = CompressWorker(codec_config).process(plan_jobs([str(photos)], str(out) + "/", mode="compress"))
    assert [r.status for r in records] == ["ok"] * len(NAMES)
    return {name: (out / name).with_suffix(".lc").read_bytes() for name in NAMES}


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def manifest_rows(path: Path, root: Path) -> list[dict[str, Any]]:
    """A manifest's rows by input, paths relative to ``root``, without the timings."""
    rows = []
    for r in read_manifest(path):
        row = r.to_dict()
        row.pop("seconds")
        row["input"], row["output"] = Path(row["input"]).name, str(Path(row["output"]).relative_to(root))
        rows.append(row)
    return sorted(rows, key=lambda row: row["input"])


def test_core_never_imports_ray() -> None:
    code = (
        "import sys, latentcodec, latentcodec.cli, latentcodec.distributed, latentcodec.eval.cli\n"
        "latentcodec.cli.build_parser().parse_args(['compress', 'a.png', '-o', 'b/', '--ray', '--ray-actors', '2'])\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_ray_missing_is_one_line(photos: Path, taesd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code, err = cli(["compress", str(photos / NAMES[0]), "-o", str(tmp_path / "a.lc"), "--model", str(taesd_dir), "--device", "cpu", "--ray"], capsys)
    assert code == 1 and err.count("\n") == 1 and "latentcodec[ray]" in err, err
    assert not (tmp_path / "a.lc").exists()


def test_datasets_match_the_batch_mode_and_keep_going_past_a_bad_image(
    ray_local, photos: Path, taesd_dir: Path, local_streams: dict[str, bytes], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from latentcodec import bitstream, decompress
    from latentcodec.decoding import decode_symbols
    from latentcodec.distributed import COMPRESS_COLUMNS, compress_dataset, decompress_dataset

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    paths = [str(photos / n) for n in NAMES] + [str(bad)]
    ds = ray_local.data.read_binary_files(paths, include_paths=True)
    rows = {Path(r["key"]).name: r for r in compress_dataset(ds, "taesd-ans", model=str(taesd_dir), device="cpu").take_all()}
    assert set(rows) == {*NAMES, "broken.png"} and all(set(r) == set(COMPRESS_COLUMNS) for r in rows.values())
    assert rows["broken.png"]["stream"] is None and "cannot read" in rows["broken.png"]["error"]
    for name in NAMES:
        row = rows[name]
        assert row["error"] is None and row["stream"] == local_streams[name]  # byte-identical
        assert row["bytes"] == len(row["stream"]) and row["bpp"] == pytest.approx(8 * row["bytes"] / (128 * 96))
        ours, _ = decode_symbols(bitstream.read(row["stream"]))
        theirs, _ = decode_symbols(bitstream.read(local_streams[name]))
        np.testing.assert_array_equal(ours, theirs)

    streams = ray_local.data.from_items([{"key": n, "stream": local_streams[n]} for n in NAMES] + [{"key": "junk", "stream": b"LC no"}])
    decoded = {r["key"]: r for r in decompress_dataset(streams, model=str(taesd_dir), device="cpu", format="array").take_all()}
    assert decoded["junk"]["error"] and decoded["junk"]["image"].size == 0
    for name in NAMES:
        expected = np.asarray(decompress(local_streams[name], model=str(taesd_dir), device="cpu"))
        assert decoded[name]["error"] is None
        np.testing.assert_array_equal(decoded[name]["image"], expected)


def test_cli_ray_writes_the_local_files_and_manifest(ray_local, photos: Path, taesd_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    for name in NAMES:
        (src / name).write_bytes((photos / name).read_bytes())
    (src / "zz-broken.png").write_bytes(b"not an image")
    flags = ["--model", str(taesd_dir), "--device", "cpu", "--quiet"]
    results = {}
    for mode, extra in (("local", []), ("ray", ["--ray", "--ray-actors", "2"])):
        out = tmp_path / mode
        code, err = cli(["compress", str(src), "-o", str(out / "lc"), "--manifest", str(out / "c.jsonl"), *flags, *extra], capsys)
        assert code == 1 and err.count("error:") == 1 and "zz-broken.png" in err, err  # one failure, the rest go on
        code, err = cli(["decompress", str(out / "lc"), "-o", str(out / "png"), "--manifest", str(out / "d.jsonl"), *flags, *extra], capsys)
        assert code == 0, err
        results[mode] = out
    local, ray = results["local"], results["ray"]
    for name in NAMES:
        stem = Path(name).stem
        assert (ray / "lc" / f"{stem}.lc").read_bytes() == (local / "lc" / f"{stem}.lc").read_bytes()
        assert (ray / "png" / f"{stem}.png").read_bytes() == (local / "png" / f"{stem}.png").read_bytes()
    assert sorted(p.name for p in (ray / "lc").iterdir()) == sorted(p.name for p in (local / "lc").iterdir())  # nothing partial
    for manifest in ("c.jsonl", "d.jsonl"):
        assert manifest_rows(ray / manifest, ray) == manifest_rows(local / manifest, local)
    assert [r["status"] for r in manifest_rows(ray / "c.jsonl", ray)] == ["ok", "ok", "ok", "failed"]
    code, err = cli(["compress", str(src / NAMES[0]), "-o", "-", *flags, "--ray"], capsys)  # actors cannot write the driver's stdout
    assert code == 1 and err.count("\n") == 1 and "--ray" in err


def _runner(codec_config: dict[str, Any], existing: str, **kwargs: Any) -> Any:
    from latentcodec.distributed import RayJobRunner

    return RayJobRunner.from_worker(CompressWorker(codec_config, existing=existing), **kwargs)  # type: ignore[arg-type]


def _check_outputs(records: list[Record], local_streams: dict[str, bytes], out: Path) -> None:
    """Every ok (or skipped) record's file is whole, the local stream; no other file is there, not even a temporary one."""
    for r in records:
        name = Path(r.input).name
        if r.status in ("ok", "skipped"):
            assert Path(r.output).read_bytes() == local_streams[name]
        else:
            assert not Path(r.output).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(r.output).name for r in records if r.status in ("ok", "skipped"))


def test_a_worker_that_dies_once_is_restarted_and_its_images_retried(
    ray_local, photos: Path, codec_config: dict[str, Any], local_streams: dict[str, bytes], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.distributed import PoolOptions

    out, marker = tmp_path / "out", tmp_path / "died"
    jobs = plan_jobs([str(photos)], str(out) + "/", mode="compress")
    # One call holds all three images: kodim01 is written, then the process dies before kodim02's
    # output; the retry finds kodim01 already there (its own bytes) and finishes the call.
    pool = PoolOptions(actors=1, batch_size=3, max_restarts=1, max_task_retries=1)
    records = _runner(codec_config, "error", pool=pool, _exit_on=("kodim02.png", str(marker))).process(jobs)
    assert marker.exists()  # the worker did die
    assert [r.status for r in records] == ["ok"] * 3, [r.error for r in records]
    _check_outputs(records, local_streams, out)


def test_a_worker_that_always_dies_loses_only_its_images_and_a_rerun_resumes(
    ray_local, photos: Path, codec_config: dict[str, Any], local_streams: dict[str, bytes], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.distributed import PoolOptions

    out = tmp_path / "out"
    jobs = plan_jobs([str(photos)], str(out) + "/", mode="compress")
    # kodim02 kills its actor on every try: that actor is gone after its one restart; the other does the rest.
    pool = PoolOptions(actors=2, batch_size=1, max_restarts=1, max_task_retries=1)
    records = _runner(codec_config, "error", pool=pool, _exit_on=("kodim02.png", None)).process(jobs)
    by_name = {Path(r.input).name: r for r in records}
    assert by_name["kodim02.png"].status == "failed" and "lost with a Ray worker" in (by_name["kodim02.png"].error or "")
    assert "no output written" in (by_name["kodim02.png"].error or "")
    assert [by_name[n].status for n in ("kodim01.png", "kodim03.png")] == ["ok", "ok"], [r.error for r in records]
    _check_outputs(records, local_streams, out)
    again = _runner(codec_config, "skip", pool=PoolOptions(actors=1)).process(jobs)  # --skip-existing
    assert [r.status for r in again] == ["skipped" if r.status == "ok" else "ok" for r in records]
    _check_outputs(again, local_streams, out)


def test_eval_ray_writes_the_local_rows(ray_local, photos: Path, taesd_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    flags = [
        str(photos), "--codecs", "taesd-ans,jpeg", "--points", "taesd-ans=0.5,1.0", "--points", "jpeg=30,70", "--metrics", "psnr-rgb",
        "--limit", "2", "--model", str(taesd_dir), "--device", "cpu", "--threads", "1", "--quiet",
    ]  # fmt: skip
    assert main(["eval", *flags, "--out", str(tmp_path / "local")]) == 0
    assert main(["eval", *flags, "--out", str(tmp_path / "ray"), "--ray", "--ray-actors", "2"]) == 0
    capsys.readouterr()
    tables = {}
    for mode in ("local", "ray"):
        with (tmp_path / mode / "per_image.csv").open() as fh:
            tables[mode] = list(csv.DictReader(fh))
    assert len(tables["local"]) == 2 * 2 * 2 and tables["ray"] == tables["local"]
    for name in ("results/taesd-ans.json", "results/jpeg.json", "bd_rate.json"):
        assert json.loads((tmp_path / "ray" / name).read_text()) == json.loads((tmp_path / "local" / name).read_text())
    summary = json.loads((tmp_path / "ray" / "eval.json").read_text())
    assert summary["failures"] == [] and summary["images"] == 2
    assert (tmp_path / "ray" / "rd-psnr-rgb.png").stat().st_size > 0
