"""The evaluation tooling on two small Kodak crops: fast, real codecs, real TAESD."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentcodec.cli import main
from latentcodec.eval import codecs as eval_codecs
from latentcodec.eval import metrics as eval_metrics
from latentcodec.errors import StageConfigError
from latentcodec.eval.cli import parse_points
from latentcodec.eval.codecs import JXLToolCodec, PresetCodec, make_codec, rate_parameter_for, select_points, split_codec_list
from latentcodec.eval.metrics import MSSSIM, PSNRRGB, PSNRY, MetricError, load_metrics
from latentcodec.eval.runner import EvalSettings, evaluate


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory, kodak_dir: Path) -> Path:
    d = tmp_path_factory.mktemp("crops")
    Image.open(kodak_dir / "kodim23.png").crop((256, 128, 352, 224)).save(d / "a.png")
    Image.open(kodak_dir / "kodim05.png").crop((0, 0, 96, 80)).save(d / "b.png")
    return d


def _array(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# --- metrics ----------------------------------------------------------------------
def test_psnr_values() -> None:
    ref = np.zeros((4, 4, 3), np.uint8)
    dist = ref.copy()
    dist[..., 0] = 3  # red only: mse 3 over RGB, luma error 0.299 * 3
    assert PSNRRGB()(ref, dist) == pytest.approx(10 * np.log10(255**2 / 3.0))
    assert PSNRY()(ref, dist) == pytest.approx(10 * np.log10(255**2 / (0.299 * 3) ** 2))
    assert PSNRRGB()(ref, ref) == pytest.approx(100.0)


def test_ms_ssim_orders_distortions_and_handles_small_images(crops: Path) -> None:
    ref = _array(crops / "a.png")  # 96 px: fewer than 5 scales fit
    rng = np.random.default_rng(0)
    mild = np.clip(ref + rng.normal(0, 4, ref.shape), 0, 255).astype(np.uint8)
    strong = np.clip(ref + rng.normal(0, 25, ref.shape), 0, 255).astype(np.uint8)
    m = MSSSIM()
    assert m(ref, ref) == pytest.approx(1.0)
    assert 1.0 > m(ref, mild) > m(ref, strong) > 0.0
    with pytest.raises(MetricError):
        m(ref, ref[:-1])


def test_metric_plugins_and_missing_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"psnr-rgb", "psnr-y", "ms-ssim", "butteraugli", "ssimulacra", "lpips", "dists"} <= set(eval_metrics.available_names())
    monkeypatch.setattr(eval_metrics.shutil, "which", lambda name: None)
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")
    metrics, notices = load_metrics(["psnr-rgb", "butteraugli", "lpips", "dists", "no-such-metric"])
    assert [m.name for m in metrics] == ["psnr-rgb"]
    text = "\n".join(notices)
    assert "butteraugli_main" in text and "libjxl-devtools" in text
    assert "'lpips' skipped" in text and "'dists' skipped" in text
    assert "'no-such-metric' skipped: not registered" in text
    monkeypatch.undo()
    default, notices = load_metrics()
    assert [m.name for m in default] == ["psnr-rgb", "psnr-y", "ms-ssim"]
    assert "butteraugli" in notices[0] and "--metrics all" in notices[0]
    everything, notices = load_metrics(["all"])
    assert len(everything) + len(notices) == len(eval_metrics.available_names())


# --- codecs ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_classical_codec_sweep_grows_with_quality(name: str, crops: Path) -> None:
    codec = make_codec(name)
    assert codec.unavailable_reason() is None  # Pillow 11.3+ wheels bundle all three
    ref = _array(crops / "a.png")
    low, high = list(codec.encode_points(ref, [10, 80]))
    assert low.decoded.shape == ref.shape and low.num_bytes < high.num_bytes
    assert PSNRRGB()(ref, low.decoded) < PSNRRGB()(ref, high.decoded)


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_size_matched_search_is_maximal_and_within_budget(name: str, crops: Path) -> None:
    codec = make_codec(name)
    ref = _array(crops / "b.png")
    pil = Image.fromarray(ref)
    for budget in (900, 1500, 3000):
        enc = codec.size_matched(ref, budget)
        assert enc is not None and enc.num_bytes <= budget
        assert enc.num_bytes == len(codec.encode(pil, enc.param))  # type: ignore[attr-defined]
        if enc.param < codec.quality_range[1]:  # type: ignore[attr-defined]
            assert len(codec.encode(pil, enc.param + 1)) > budget  # type: ignore[attr-defined]
    assert codec.size_matched(ref, 10) is None  # nothing fits in 10 bytes


def test_missing_backends_name_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_codecs.shutil, "which", lambda name: None)
    assert "libjxl-tools" in (JXLToolCodec().unavailable_reason() or "")
    from PIL import features

    monkeypatch.setattr(features, "check", lambda feature: False)
    assert "pip install" in (make_codec("avif").unavailable_reason() or "")
    assert "unknown preset" in (make_codec("no-such-preset").unavailable_reason() or "")
    assert "unknown transform 'nope'" in (make_codec("taesd-ans@nope").unavailable_reason() or "")


def test_points_and_rate_parameters() -> None:
    jpeg = make_codec("jpeg")
    grid = list(jpeg.default_points)
    assert select_points(jpeg, None) == grid
    three = select_points(jpeg, 3)
    assert len(three) == 3 and three[0] == grid[0] and three[-1] == grid[-1]
    assert select_points(jpeg, [42]) == [42]
    rp = rate_parameter_for("taesd-ans")
    assert rp is not None and rp.name == "step" and rp.sweep[0] > rp.sweep[-1]


def test_preset_points_share_one_latent_and_decode_exactly(crops: Path, taesd_dir: Path) -> None:
    from latentcodec import Codec

    codec = PresetCodec("taesd-ans", model=str(taesd_dir), device="cpu")
    assert codec.unavailable_reason() is None
    ref = _array(crops / "b.png")
    coarse, fine = list(codec.encode_points(ref, [1.0, 0.25]))
    assert coarse.num_bytes < fine.num_bytes
    # the same bytes as the ordinary compress path at that step (shared, already loaded transform)
    variant = codec.variant(0.25)
    assert isinstance(variant, Codec) and variant.quantizer.step == 0.25 and variant.transform is codec.variant(1.0).transform
    assert len(variant.compress(Image.fromarray(ref))) == fine.num_bytes


def test_codec_list_and_points_name_preset_options() -> None:
    assert split_codec_list("taesd-hyperprior:entropy_coder.refine_z=0,quantizer.clip=4, jpeg,,webp") == [
        "taesd-hyperprior:entropy_coder.refine_z=0,quantizer.clip=4", "jpeg", "webp",
    ]
    with pytest.raises(StageConfigError, match="follows no PRESET"):
        split_codec_list("jpeg,refine_z=0")
    assert parse_points(["taesd-hyperprior:entropy_coder.refine_z=0=0.5,1.0", "jpeg=10"]) == {
        "taesd-hyperprior:entropy_coder.refine_z=0": [0.5, 1.0], "jpeg": [10],
    }
    with pytest.raises(StageConfigError):
        parse_points(["jpeg=10", "webp"])


def test_preset_options_reach_from_preset(crops: Path, taesd_dir: Path) -> None:
    runtime = {"model": str(taesd_dir), "device": "cpu"}
    default = PresetCodec("taesd-hyperprior", **runtime)
    plain = PresetCodec("taesd-hyperprior:entropy_coder.refine_z=0", **runtime)
    assert default.unavailable_reason() is None and plain.unavailable_reason() is None
    assert plain.preset == "taesd-hyperprior" and plain.base_name == "taesd-hyperprior" and "refine_z=0" in plain.description
    assert default.variant(0.5).entropy_coder.refine_z == 30 and plain.variant(0.5).entropy_coder.refine_z == 0
    ref = _array(crops / "b.png")
    [refined], [unrefined] = default.encode_points(ref, [0.5]), plain.encode_points(ref, [0.5])
    assert np.array_equal(refined.decoded, unrefined.decoded)  # refine_z only recodes the hyper-latent
    assert refined.num_bytes <= unrefined.num_bytes  # and keeps the refined z only when it is smaller
    assert "option 'no_such_option'" in (PresetCodec("taesd-ans:no_such_option=1", **runtime).unavailable_reason() or "")
    assert "--points taesd-ans:step=0.3=" in (PresetCodec("taesd-ans:step=0.3", **runtime).unavailable_reason() or "")


def test_eval_cli_shares_the_common_flags() -> None:
    from latentcodec.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["eval", "d", "--out", "o", "--device", "cuda:1", "--no-progress", "-vv"])
    assert args.device == "cuda:1" and args.quiet and args.verbose == 2
    assert parser.parse_args(["eval", "d", "--out", "o", "--quiet"]).quiet
    assert not parser.parse_args(["eval", "d", "--out", "o"]).quiet
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "d", "--out", "o", "--device", "gpu"])
    eval_parser = parser._subparsers._group_actions[0].choices["eval"]  # type: ignore[union-attr]
    assert "--no-progress" not in eval_parser.format_help() and "--quiet" in eval_parser.format_help()


# --- the whole evaluation -------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(crops: Path, taesd_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("data")
    for p in crops.iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    (data / "broken.png").write_bytes(b"not an image")
    out = tmp_path_factory.mktemp("out")
    report = evaluate(
        EvalSettings(
            dataset=data, codecs=["taesd-ans", "jpeg", "webp", "no-such-preset"], out=out,
            runtime={"model": str(taesd_dir), "device": "cpu"},
            points={"taesd-ans": [1.0, 0.3], "jpeg": [10, 50, 90], "webp": [10, 50, 90]},
            metrics=["psnr-rgb", "ms-ssim"], progress=False,
        )
    )
    return report, out


def test_sweep_writes_compressai_json_csv_and_plots(sweep) -> None:  # type: ignore[no-untyped-def]
    report, out = sweep
    for name, n in (("taesd-ans", 2), ("jpeg", 3), ("webp", 3)):
        doc = json.loads((out / "results" / f"{name}.json").read_text())
        assert doc["name"] == name and doc["description"]
        res = doc["results"]
        assert set(res) == {"bpp", "psnr-rgb", "ms-ssim"} and all(len(v) == n for v in res.values())
        assert res["bpp"] == sorted(res["bpp"]) and res["psnr-rgb"][0] < res["psnr-rgb"][-1]
        assert doc["images"] == [2] * n
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 2 * (2 + 3 + 3)
    jpeg_a = [r for r in rows if r["codec"] == "jpeg" and r["image"] == "a.png"]
    assert [int(r["param"]) for r in jpeg_a] == [10, 50, 90]
    assert all(float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / (96 * 96)) for r in jpeg_a)
    for metric in ("psnr-rgb", "ms-ssim"):
        png = out / f"rd-{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(png).size[0] > 300
    bd = json.loads((out / "bd_rate.json").read_text())
    assert bd["anchor"] == "jpeg" and set(bd["bd_rate"]) == {"taesd-ans", "webp"}
    assert any("no-such-preset" in n for n in report.notices)
    assert any("broken.png" in f for f in report.failures)  # reported, and the others ran


@pytest.fixture(scope="module")
def matched(crops: Path, taesd_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A size-matched run at two of our steps, keeping the decoded images (--save-images)."""
    out = tmp_path_factory.mktemp("matched")
    report = evaluate(
        EvalSettings(
            dataset=crops, codecs=["taesd-ans", "jpeg", "webp", "avif"], out=out,
            runtime={"model": str(taesd_dir), "device": "cpu"}, points={"taesd-ans": [0.3, 0.15]},
            size_matched=True, metrics=["psnr-rgb"], progress=False, save_images=out / "img",
        )
    )
    return report, out


def test_size_matched_never_exceeds_our_file(matched) -> None:  # type: ignore[no-untyped-def]
    report, _ = matched
    ours = {(r["image"], r["point"]): r["bytes"] for r in report.rows if r["codec"] == "taesd-ans"}
    matched_rows = [r for r in report.rows if r["codec"] != "taesd-ans"]
    missing = [f for f in report.failures if "no quality fits" in f]
    assert len(matched_rows) + len(missing) == 3 * len(ours) and matched_rows
    for r in matched_rows:
        assert r["target_bytes"] == ours[(r["image"], r["point"])]
        assert r["bytes"] <= r["target_bytes"]


def test_size_matched_table_counts_every_image_and_names_winners(matched) -> None:  # type: ignore[no-untyped-def]
    report, out = matched
    table = json.loads((out / "size_matched.json").read_text())
    assert table == json.loads(json.dumps(report.size_matched, default=str)) and table["reference"] == "taesd-ans"
    assert [t["point"] for t in table["points"]] == [0.3, 0.15]
    missing = [f for f in report.failures if "no quality fits" in f]
    for t in table["points"]:
        rows = [r for r in report.rows if r["point"] == t["point"]]
        assert set(t["codecs"]) == {"taesd-ans", "jpeg", "webp", "avif"} and t["images"] == 2
        for name, e in t["codecs"].items():
            mine = [r for r in rows if r["codec"] == name]
            assert e["images"] == len(mine) and e["images"] + e["too_large"] + e["failed"] == e["of"] == 2
            assert e["too_large"] == sum(f.startswith(f"{name} / ") and f"@ {t['point']}:" in f for f in missing)
            if mine:
                assert e["metrics"]["psnr-rgb"] == pytest.approx(np.mean([r["psnr-rgb"] for r in mine]))
        complete = {n: e["metrics"]["psnr-rgb"] for n, e in t["codecs"].items() if e["images"] == 2}
        assert t["winner"]["psnr-rgb"] == [max(complete, key=complete.get)]  # type: ignore[arg-type]
    md = (out / "size_matched.md").read_text()
    assert md.count("| winner |") == 2 and "`webp`" in md and "| `taesd-ans` | 2/2 |" in md


def test_save_images_keeps_every_point_and_draws_a_sheet_per_image(matched, crops: Path) -> None:  # type: ignore[no-untyped-def]
    from latentcodec.eval.sheet import BACKGROUND, BORDER

    report, out = matched
    for row in report.rows:  # every decoded point, named by codec, parameter and bytes, is the measured image
        png = Path(row["decoded_png"])
        assert png.parent == out / "img" / Path(row["image"]).stem and f"_{row['bytes']}B" in png.name
        assert PSNRRGB()(_array(crops / row["image"]), _array(png)) == pytest.approx(row["psnr-rgb"])
    assert "decoded_png" in next(csv.DictReader((out / "per_image.csv").open()))
    for image in ("a", "b"):
        sheet = Image.open(out / "img" / f"{image}.sheet.png").convert("RGB")
        layout = json.loads((out / "img" / f"{image}.sheet.json").read_text())
        assert list(sheet.size) == layout["sheet_size"]
        assert [len(r["panels"]) for r in layout["rows"]] == [5, 5]  # two points x (original + 4 codecs)
        pw, ph = layout["panel_size"]
        pixels = np.asarray(sheet)
        original = _array(crops / f"{image}.png")
        cx, cy, cw, ch = layout["crop"]
        assert 0 <= cx and cx + cw <= original.shape[1] and 0 <= cy and cy + ch <= original.shape[0]
        for row_layout, point in zip(layout["rows"], (0.3, 0.15)):
            titles = [p["title"] for p in row_layout["panels"]]
            assert titles == ["original", "taesd-ans", "jpeg", "webp", "avif"] and str(point) in row_layout["label"]
            for panel in row_layout["panels"]:
                x, y, w, h = panel["box"]
                assert (w, h) == (pw, ph)
                for px, py in ((x, y), (x + w - 1, y + h - 1), (x + w // 2, y), (x, y + h // 2)):
                    assert tuple(pixels[py, px]) == BORDER  # the panel's frame
                assert tuple(pixels[y + h // 2, x - 1]) == BACKGROUND  # and the margin beside it
            ox, oy = row_layout["panels"][0]["box"][:2]
            zx, zy = layout["zoom"]["offset"]
            assert tuple(pixels[oy + zy, ox + zx]) == tuple(original[cy, cx])  # the zoom starts at the crop
            ours = row_layout["panels"][1]
            for panel in row_layout["panels"][2:]:
                assert panel.get("bytes") is None or panel["bytes"] <= ours["bytes"]


def test_per_image_evaluator_rebuilt_from_a_pickled_spec_gives_the_serial_rows(crops: Path, taesd_dir: Path, tmp_path: Path) -> None:
    import pickle

    from latentcodec.eval.per_image import ImageEvaluator, merge
    from latentcodec.eval.runner import plan_evaluation, run_images

    plan = plan_evaluation(
        EvalSettings(
            dataset=crops, codecs=["taesd-ans", "jpeg", "webp"], out=tmp_path, runtime={"model": str(taesd_dir), "device": "cpu"},
            points={"taesd-ans": [0.3, 0.15]}, size_matched=True, metrics=["psnr-rgb"], progress=False,
        )
    )
    serial = merge(run_images(plan), plan.spec.codecs)
    worker = ImageEvaluator.from_spec(pickle.loads(pickle.dumps(plan.spec)))  # as a Ray actor would
    results = [pickle.loads(pickle.dumps(worker(path))) for path in reversed(plan.images)]  # any order, shipped back
    results.sort(key=lambda r: plan.images.index(Path(r.image)))
    distributed = merge(results, plan.spec.codecs)
    assert distributed.rows == serial.rows and distributed.failures == serial.failures and distributed.unmatched == serial.unmatched
    assert len(serial.rows) + len(serial.unmatched) == 2 * 2 * 3 and set(distributed.timing) == {"taesd-ans", "jpeg", "webp"}


def test_size_matched_summary_rules() -> None:
    from latentcodec.eval.size_matched import summarize, to_markdown

    def row(codec: str, image: str, psnr: float, dist: float, nbytes: int = 100) -> dict:
        return {"codec": codec, "image": image, "point": 0.5, "bytes": nbytes, "bpp": nbytes / 100, "target_bytes": None, "psnr": psnr, "dist": dist}

    rows = [
        row("ours", "1", 30, 2.0), row("ours", "2", 20, 4.0), row("ours", "3", 25, 3.0),
        row("ours:fast", "1", 30, 2.0, 120), row("ours:fast", "2", 20, 4.0, 120), row("ours:fast", "3", 25, 3.0, 120),
        row("avif", "1", 31, 1.5), row("avif", "2", 21, 3.5), row("avif", "3", 24, 3.6),
        row("jpeg", "1", 40, 0.5), row("jpeg", "3", 35, 1.0),  # best on average, but it could not make image 2
    ]
    unmatched = [{"codec": "jpeg", "image": "2", "point": 0.5, "target_bytes": 100}]
    table = summarize(rows, unmatched, "ours", "step", ["ours:fast"], ["jpeg", "avif", "webp"], {"psnr": True, "dist": False})
    [t] = table["points"]
    jpeg, avif, ours, webp = (t["codecs"][n] for n in ("jpeg", "avif", "ours", "webp"))
    assert (jpeg["images"], jpeg["too_large"], jpeg["failed"]) == (2, 1, 0)
    assert (webp["images"], webp["too_large"], webp["failed"]) == (0, 0, 3)  # ran on none: counted, not dropped
    assert t["winner"] == {"psnr": ["avif"], "dist": ["avif"]}  # jpeg is incomplete, webp absent
    assert ours["gap_to_avif"]["psnr"] == pytest.approx(((30 - 31) + (20 - 21) + (25 - 24)) / 3)
    assert jpeg["gap_to_avif"]["psnr"] == pytest.approx(((40 - 31) + (35 - 24)) / 2) and jpeg["gap_images"] == 2  # paired
    assert t["codecs"]["ours:fast"]["bpp"] == pytest.approx(1.2) and "gap_to_avif" not in avif
    md = to_markdown(table)
    assert "| `jpeg` | 2/3 (1 too large) |" in md and "| `webp` | 0/3 (3 failed) |" in md
    assert "| winner | | | `avif` | `avif` |" in md and "**24.67**" not in md and "**25.33**" in md and t["note"] is None
    # below every classical codec's smallest file: counted, with that size, and no winner
    ours_only = [r for r in rows if r["codec"] == "ours"]
    too_small = [{"codec": "avif", "image": i, "point": 0.5, "target_bytes": 100, "smallest_bpp": 1.5 + int(i) / 10} for i in "123"]
    [t] = summarize(ours_only, too_small, "ours", "step", [], ["avif"], {"psnr": True})["points"]
    assert t["winner"] == {"psnr": []} and "no winner" in t["note"] and t["codecs"]["avif"]["smallest_bpp"] == pytest.approx(1.7)
    assert "| `avif` | 0/3 (3 too large: ≥ 1.700 bpp) |" in to_markdown({**table, "metrics": {"psnr": {"higher_is_better": True}}, "points": [t]})


def test_cli_eval_and_errors(crops: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ev"
    argv = ["eval", str(crops), "--codecs", "jpeg,webp", "--out", str(out), "--points", "2", "--metrics", "psnr-rgb", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "BD-rate vs jpeg" in text and "webp:" in text
    assert (out / "results" / "webp.json").exists() and (out / "rd-psnr-rgb.png").exists()
    assert main(argv) == 1  # the output holds an evaluation: needs --force
    assert "--force" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing"), "--out", str(out), "--force"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("latentcodec: error: no such image file or folder") and "Traceback" not in err
    assert main(["eval", str(crops), "--codecs", "jpeg", "--out", str(out), "--size-matched", "--force", "--no-progress"]) == 1
    assert "size-matched mode needs one of our presets" in capsys.readouterr().err


def test_jxl_through_cjxl_or_a_notice(crops: Path) -> None:
    import shutil

    codec = JXLToolCodec()
    if shutil.which("cjxl") is None or shutil.which("djxl") is None:
        assert "libjxl-tools" in (codec.unavailable_reason() or "")
        return
    ref = _array(crops / "b.png")
    low, high = list(codec.encode_points(ref, [20, 90]))
    assert low.num_bytes < high.num_bytes and high.decoded.shape == ref.shape
    assert PSNRRGB()(ref, high.decoded) > PSNRRGB()(ref, low.decoded) > 20
