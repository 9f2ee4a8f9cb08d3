"""The evaluation tools: tools/rd.py and tools/ablation.py end to end on tiny budgets, Bjontegaard deltas on
known cases, and the shared-training shortcut against the plain Encoder (same bytes)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, run, synthetic_frames, write_clip

import invrcodec
from invrcodec.encoder import EncoderConfig
from invrcodec.types import StreamInfo

TOOLS = ROOT / "tools"


def _load_evalcommon():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("_evalcommon", TOOLS / "_evalcommon.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["_evalcommon"] = module
    spec.loader.exec_module(module)
    return module


ec = _load_evalcommon()


# -- Bjontegaard -----------------------------------------------------------------------------------------
PSNR = [30.0, 33.0, 36.0, 39.0]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_half_the_rate_is_minus_50_percent(method: str) -> None:
    anchor = [100.0, 200.0, 400.0, 800.0]
    test = [r / 2 for r in anchor]
    assert ec.bd_rate(anchor, PSNR, test, PSNR, method) == pytest.approx(-50.0, abs=1e-9)
    assert ec.bd_rate(test, PSNR, anchor, PSNR, method) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_linear_drift(method: str) -> None:
    # log10 R = P/10 (anchor) and P/10 + 0.01 (P - 30) (test): mean difference over [30, 39] is 0.045.
    psnr = np.linspace(30, 39, 5)
    anchor = 10 ** (psnr / 10)
    test = 10 ** (psnr / 10 + 0.01 * (psnr - 30))
    expected = (10**0.045 - 1) * 100
    assert ec.bd_rate(anchor, psnr, test, psnr, method) == pytest.approx(expected, rel=1e-9)


def test_bd_cubic_exact_on_cubic_curves() -> None:
    # The classic VCEG-M33 cubic fit reproduces cubic data exactly, so the integral is known in closed form.
    p = np.array([30.0, 32.0, 35.0, 37.0, 40.0])
    anchor_log = 1 + 0.1 * p
    test_log = anchor_log + 1e-4 * (p - 30) ** 3  # mean of 1e-4 (p - 30)^3 over [30, 40] = 1e-4 * 10^3 / 4
    expected = (10**0.025 - 1) * 100
    assert ec.bd_rate(10**anchor_log, p, 10**test_log, p, "cubic") == pytest.approx(expected, rel=1e-9)
    # pchip is a different interpolant, but close on smooth monotone data.
    assert ec.bd_rate(10**anchor_log, p, 10**test_log, p, "pchip") == pytest.approx(expected, abs=0.3)


def test_bd_psnr_and_partial_overlap() -> None:
    rate = [100.0, 200.0, 400.0, 800.0]
    better = [p + 1.5 for p in PSNR]
    assert ec.bd_psnr(rate, PSNR, rate, better) == pytest.approx(1.5)
    # Test curve only overlaps [36, 39] of the anchor's PSNR range; half the rate there.
    assert ec.bd_rate(rate, PSNR, [200.0, 400.0, 1600.0], [36.0, 39.0, 45.0]) == pytest.approx(-50.0)


def test_bd_no_overlap_and_too_few_points() -> None:
    assert ec.bd_rate([1.0, 2.0], [20.0, 21.0], [1.0, 2.0], [30.0, 31.0]) is None
    assert ec.bd_rate([1.0, 2.0], [20.0, 21.0], [1.0, 2.0], [20.5, 21.5], "cubic") is None  # cubic needs 4
    assert ec.bd_rate([1.0], [20.0], [1.0, 2.0], [20.0, 21.0]) is None


def test_pareto_drops_dominated_points() -> None:
    r, p = ec.pareto([100, 100, 200, 300, 400], [30, 31, 30.5, 33, 32])
    assert r == [100, 300] and p == [31, 33]


def test_pchip_integral_matches_trapezoid_on_fine_grid() -> None:
    x = [0.0, 1.0, 3.0, 4.0, 7.0]
    y = [0.0, 2.0, 2.5, 5.0, 5.2]
    d = ec._pchip_slopes(np.array(x), np.array(y))
    grid = np.linspace(0.5, 6.0, 20001)
    k = np.clip(np.searchsorted(x, grid, side="right") - 1, 0, len(x) - 2)
    xs, ys = np.array(x), np.array(y)
    h = xs[k + 1] - xs[k]
    t = (grid - xs[k]) / h
    vals = (ys[k] * (2 * t**3 - 3 * t**2 + 1) + d[k] * h * (t**3 - 2 * t**2 + t)
            + ys[k + 1] * (-2 * t**3 + 3 * t**2) + d[k + 1] * h * (t**3 - t**2))
    trapezoid = float(np.sum((vals[1:] + vals[:-1]) / 2 * np.diff(grid)))
    assert ec.pchip_integral(x, y, 0.5, 6.0) == pytest.approx(trapezoid, rel=1e-6)
    assert all(np.diff(vals) >= -1e-12)  # monotone data stays monotone


def test_kde_integrates_to_one() -> None:
    grid = np.linspace(0, 60, 6001)
    dens = ec.gaussian_kde([30.0, 31.0, 31.5, 35.0], grid)
    assert float(np.sum(dens) * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-3)


# -- shared training == Encoder ----------------------------------------------------------------------------
@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    """One torch thread: on a CPU shared with other jobs, two threads wait on each other for most of a step."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_shared_training_writes_the_encoders_bytes(tmp_path: Path, one_thread: None) -> None:
    frames = synthetic_frames(16, 16, 4)
    info = StreamInfo(16, 16, 4, Fraction(25), Fraction(1, 25))
    points = []
    for name, kwargs in (("c", {"qp": 42}), ("u", {"coder": "raw32"})):
        cfg = EncoderConfig.from_preset("ultrafast", steps=12, hidden=8, layers=2, chunk_frames=2, device="cpu",
                                        **kwargs)  # type: ignore[arg-type]
        points.append((name, cfg, tmp_path / f"shared_{name}.invr"))
    coded, _, fits = ec.encode_invr_points(frames, info, points, log=lambda s: None)
    assert len(fits) == 2
    for (name, cfg, path), point in zip(points, coded):
        # The plain Encoder, with PSNR checks every 4 steps: the checks must not change the weights.
        plain = replace(cfg, recipe=replace(cfg.recipe, eval_every=4))
        ec.encode_with_encoder(frames, info, plain, tmp_path / f"plain_{name}.invr")
        assert path.read_bytes() == (tmp_path / f"plain_{name}.invr").read_bytes()
        psnrs, _ = ec.decode_invr_psnr(path, frames)
        with invrcodec.open(path) as f:
            assert [e.train_psnr for e in f.index] == [p.train_psnr for p in point.packets]
        assert len(psnrs) == 4 and all(math.isfinite(v) for v in psnrs)


# -- end to end --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evalclip") / "synth.mp4"
    return write_clip(path, synthetic_frames(48, 40, 4), options={"crf": "5", "preset": "ultrafast"})


def test_rd_end_to_end(small_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "rd"
    proc = run([sys.executable, TOOLS / "rd.py", small_clip, "--size", "32", "--frames", "4", "--steps", "20",
                "--hidden", "16", "--chunk-frames", "2", "--qp", "34,42", "--bitrates", "40",
                "--threads", "1", "--out", out], timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    report = json.loads((out / "results.json").read_text())
    (clip,) = report["clips"]
    assert (clip["width"], clip["height"], clip["frames"]) == (32, 32, 4)
    codecs = {p["codec"] for p in clip["points"]}
    assert codecs == {"INVR-C", "INVR-U", "MPEG-1", "MPEG-2", "H.264", "H.265"}
    for p in clip["points"]:
        assert Path(p["file"]).stat().st_size == p["bytes"] > 0
        assert len(p["psnr_per_frame"]) == 4
        assert p["psnr_mean"] == pytest.approx(np.mean(p["psnr_per_frame"]), abs=1e-3)
        assert p["kbps"] == pytest.approx(p["bytes"] * 8 / 1000 / (4 / 25), rel=1e-3)
    invr_c = sorted((p for p in clip["points"] if p["codec"] == "INVR-C"), key=lambda p: p["bytes"])
    invr_u = next(p for p in clip["points"] if p["codec"] == "INVR-U")
    assert invr_c[-1]["bytes"] < invr_u["bytes"]
    with invrcodec.open(invr_c[0]["file"]) as f:
        assert f.header.representation.hidden == 16 and f.frame_count == 4
    assert {r["anchor"] for r in clip["bd"]} == {"MPEG-1", "MPEG-2", "H.264", "H.265"}
    assert set(clip["table1"]) == {"INVR-C", "INVR-U", "MPEG-1", "MPEG-2", "H.264", "H.265"}
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == len(clip["points"])
    table = (out / "table.md").read_text()
    assert "| PSNR | INVR-C |" in table and "BD-rate" in table
    for name in ("rd_32.png", "perframe_32.png", "density_32.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --replot recomputes the same analysis from results.json alone.
    again = tmp_path / "again"
    proc = run([sys.executable, TOOLS / "rd.py", "--replot", out / "results.json", "--out", again])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    (clip2,) = json.loads((again / "results.json").read_text())["clips"]
    assert clip2["bd"] == clip["bd"] and clip2["table1"] == clip["table1"]
    assert (again / "table.md").read_text().split("\n")[1:] == table.split("\n")[1:]


def test_ablation_end_to_end(small_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "ab"
    proc = run([sys.executable, TOOLS / "ablation.py", small_clip, "--size", "16", "--frames", "3",
                "--steps", "10", "--eval-every", "5", "--hidden", "16", "--threads", "1", "--out", out],
               timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    report = json.loads((out / "ablation.json").read_text())
    assert [v["label"] for v in report["variants"]] == ["INVR", "INVR-Even", "INVR-None", "INVR-Gaussian",
                                                       "ReLU-Sin"]
    for v in report["variants"]:
        assert [c["step"] for c in v["curve"]] == [5, 10]
        elapsed = [c["elapsed_s"] for c in v["curve"]]
        assert elapsed == sorted(elapsed)
        assert v["curve"][-1]["psnr"] == pytest.approx(v["final_psnr"], abs=1e-3)
        # INVR-U decodes to what training measured (float weights, 8-bit rounded), pooled over the chunk.
        assert v["INVR-U"]["psnr_chunk"] == pytest.approx(v["final_psnr"], abs=0.02)
        assert v["INVR-U"]["psnr_mean"] >= v["INVR-U"]["psnr_chunk"] - 1e-9
        assert v["INVR-C"]["bytes"] < v["INVR-U"]["bytes"]
        with invrcodec.open(v["INVR-U"]["file"]) as f:
            assert f.frame_count == 3
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"


def test_rd_rejects_unknown_baseline(tmp_path: Path) -> None:
    proc = run([sys.executable, TOOLS / "rd.py", "x.mp4", "--baselines", "vp9", "--out", tmp_path])
    assert proc.returncode == 2 and b"unknown baseline" in proc.stderr


def test_rd_on_real_clip(shared_media: Path, tmp_path: Path) -> None:
    """4 frames of carphone at 32x32, one baseline bitrate: the paper's preprocessing on real footage."""
    out = tmp_path / "rd"
    proc = run([sys.executable, TOOLS / "rd.py", shared_media / "carphone_pristine.mp4", "--size", "32",
                "--frames", "4", "--steps", "20", "--hidden", "16", "--chunk-frames", "4", "--qp", "38",
                "--compare-refine", "--baselines", "h264", "--bitrates", "60", "--threads", "1", "--out", out],
               timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    (clip,) = json.loads((out / "results.json").read_text())["clips"]
    assert (clip["source_width"], clip["source_height"]) == (176, 144)
    assert {p["codec"] for p in clip["points"]} == {"INVR-C", "INVR-U", "H.264"}
    # --compare-refine: the same training coded with and without refinement, as two curves of one size each.
    invr_c = {p["curve"]: p for p in clip["points"] if p["codec"] == "INVR-C"}
    assert set(invr_c) == {"INVR-C h16 c4", "INVR-C h16 c4 no-refine"}
    sizes = [invr_c[c]["bytes"] for c in ("INVR-C h16 c4", "INVR-C h16 c4 no-refine")]
    assert abs(sizes[0] - sizes[1]) < 0.1 * sizes[1]  # refinement moves values, not the step sizes
    h264 = next(p for p in clip["points"] if p["codec"] == "H.264")
    assert h264["psnr_mean"] > 20
