"""Entry-point discovery: lazy, reports broken plugins, refuses duplicates."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from latentcodec import registry
from latentcodec.errors import DuplicateStageError, PluginLoadError, UnknownStageError

BUILTINS = {
    "transform": {"taesd", "sd-vae"},
    "quantizer": {"uniform", "uint8"},
    "entropy_coder": {"ans", "zlib"},
    "refiner": {"vae"},
}


def test_builtins_are_discovered_through_our_own_entry_points() -> None:
    for kind, names in BUILTINS.items():
        found = registry.entries(kind)  # type: ignore[arg-type]
        assert names <= set(found)
        for name in names:
            assert found[name].distribution.startswith("latentcodec ")
            assert registry.load(kind, name).name == name  # type: ignore[arg-type]


def make_dist(root: Path, dist: str, group_entries: dict[str, dict[str, str]], module: str | None = None, code: str = "") -> None:
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = []
    for group, eps in group_entries.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    if module:
        (root / f"{module}.py").write_text(textwrap.dedent(code))


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    registry.refresh()
    for mod in [m for m in sys.modules if m.startswith("lc_test_")]:
        del sys.modules[mod]


def test_discovery_does_not_import_and_a_broken_plugin_is_isolated(plugin_path: Path) -> None:
    make_dist(
        plugin_path,
        "lc-broken",
        {"latentcodec.quantizers": {"broken-q": "lc_test_broken:Broken"}},
        module="lc_test_broken",
        code="raise ImportError('simulated missing dependency')\n",
    )
    registry.refresh()
    entries = registry.entries("quantizer")
    assert entries["broken-q"].distribution == "lc-broken 1.0"
    assert "lc_test_broken" not in sys.modules  # discovery imported nothing
    with pytest.raises(PluginLoadError, match="broken-q.*lc-broken 1.0.*simulated missing dependency"):
        registry.load("quantizer", "broken-q")
    assert registry.load("quantizer", "uniform").name == "uniform"  # the others still work
    results = {r.entry.name: r.error for r in registry.check_all()}
    assert "simulated" in (results["broken-q"] or "") and results["uniform"] is None


def test_plugin_that_is_not_a_stage_is_rejected(plugin_path: Path) -> None:
    make_dist(
        plugin_path,
        "lc-wrong",
        {"latentcodec.quantizers": {"wrong-q": "lc_test_wrong:NotAStage", "misnamed": "lc_test_wrong:Misnamed"}},
        module="lc_test_wrong",
        code="""
        from latentcodec.quantizers.uniform import UniformQuantizer
        class NotAStage: pass
        class Misnamed(UniformQuantizer):
            name = "something-else"
        """,
    )
    registry.refresh()
    with pytest.raises(PluginLoadError, match="not a subclass"):
        registry.load("quantizer", "wrong-q")
    with pytest.raises(PluginLoadError, match="declares name"):
        registry.load("quantizer", "misnamed")


def test_a_third_party_stage_loads_lazily(plugin_path: Path) -> None:
    make_dist(
        plugin_path,
        "lc-good",
        {"latentcodec.quantizers": {"coarse": "lc_test_good:Coarse"}},
        module="lc_test_good",
        code="""
        from latentcodec.quantizers.uniform import UniformQuantizer
        class Coarse(UniformQuantizer):
            name = "coarse"
        """,
    )
    registry.refresh()
    assert "lc_test_good" not in sys.modules
    stage = registry.create("quantizer", "coarse", step=2.0)
    assert stage.step == 2.0 and "lc_test_good" in sys.modules


def test_duplicate_names_are_errors_not_overwrites(plugin_path: Path) -> None:
    make_dist(plugin_path, "lc-dup", {"latentcodec.quantizers": {"uniform": "lc_test_dup:Q"}})
    registry.refresh()
    with pytest.raises(DuplicateStageError, match="uniform.*registered more than once.*lc-dup 1.0"):
        registry.load("quantizer", "uniform")
    assert registry.load("quantizer", "uint8").name == "uint8"
    assert "latentcodec 0.1" in str(registry.duplicates("quantizer")["uniform"])


def test_unknown_stage_lists_the_valid_names() -> None:
    with pytest.raises(UnknownStageError, match=r"unknown entropy coder 'nope'; installed: .*ans.*zlib"):
        registry.load("entropy_coder", "nope")
