"""The evaluation tools: tools/rd.py and tools/ablation.py end to end on tiny budgets, Bjontegaard deltas on
known cases (SciPy's PCHIP against the Fritsch-Carlson interpolant the tool computed by hand before), the
4:4:4 baselines, the named INVR curves, and the shared-training shortcut against the plain Encoder (same
bytes)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import ROOT, run, synthetic_frames, write_clip

import invrcodec
from invrcodec.codec.presets import PRESETS
from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.types import Prediction, StreamInfo

TOOLS = ROOT / "tools"


def _load_tool(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


rd = _load_tool("rd")
sys.path.insert(0, str(TOOLS))  # as each tool does: the shared pieces are the package tools/evalkit
from evalkit.baselines import (BASELINES, CRF_SWEEP, Target, baseline_sweep, encode_baseline,  # noqa: E402
                                roundtrip_psnr)
from evalkit.bd import bd_psnr, bd_rate, bd_rate_fixed, db_behind, pareto, pchip_integral  # noqa: E402
from evalkit.clips import Clip  # noqa: E402
from evalkit.invr import all_key_chunks, decode_invr_psnr, encode_invr_points, encode_with_encoder  # noqa: E402
from evalkit.rdpoints import Point  # noqa: E402
from evalkit.rdreport import write_outputs  # noqa: E402
from evalkit.report import gaussian_kde  # noqa: E402


# -- Bjontegaard -----------------------------------------------------------------------------------------
PSNR = [30.0, 33.0, 36.0, 39.0]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_half_the_rate_is_minus_50_percent(method: str) -> None:
    anchor = [100.0, 200.0, 400.0, 800.0]
    test = [r / 2 for r in anchor]
    assert bd_rate(anchor, PSNR, test, PSNR, method) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(test, PSNR, anchor, PSNR, method) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_linear_drift(method: str) -> None:
    # log10 R = P/10 (anchor) and P/10 + 0.01 (P - 30) (test): mean difference over [30, 39] is 0.045.
    psnr = np.linspace(30, 39, 5)
    anchor = 10 ** (psnr / 10)
    test = 10 ** (psnr / 10 + 0.01 * (psnr - 30))
    expected = (10**0.045 - 1) * 100
    assert bd_rate(anchor, psnr, test, psnr, method) == pytest.approx(expected, rel=1e-9)


def test_bd_cubic_exact_on_cubic_curves() -> None:
    # The classic VCEG-M33 cubic fit reproduces cubic data exactly, so the integral is known in closed form.
    p = np.array([30.0, 32.0, 35.0, 37.0, 40.0])
    anchor_log = 1 + 0.1 * p
    test_log = anchor_log + 1e-4 * (p - 30) ** 3  # mean of 1e-4 (p - 30)^3 over [30, 40] = 1e-4 * 10^3 / 4
    expected = (10**0.025 - 1) * 100
    assert bd_rate(10**anchor_log, p, 10**test_log, p, "cubic") == pytest.approx(expected, rel=1e-9)
    # pchip is a different interpolant, but close on smooth monotone data.
    assert bd_rate(10**anchor_log, p, 10**test_log, p, "pchip") == pytest.approx(expected, abs=0.3)


def test_bd_psnr_and_partial_overlap() -> None:
    rate = [100.0, 200.0, 400.0, 800.0]
    better = [p + 1.5 for p in PSNR]
    assert bd_psnr(rate, PSNR, rate, better) == pytest.approx(1.5)
    # Test curve only overlaps [36, 39] of the anchor's PSNR range; half the rate there.
    assert bd_rate(rate, PSNR, [200.0, 400.0, 1600.0], [36.0, 39.0, 45.0]) == pytest.approx(-50.0)


def test_bd_no_overlap_and_too_few_points() -> None:
    assert bd_rate([1.0, 2.0], [20.0, 21.0], [1.0, 2.0], [30.0, 31.0]) is None
    assert bd_rate([1.0, 2.0], [20.0, 21.0], [1.0, 2.0], [20.5, 21.5], "cubic") is None  # cubic needs 4
    assert bd_rate([1.0], [20.0], [1.0, 2.0], [20.0, 21.0]) is None


def test_pareto_drops_dominated_points() -> None:
    r, p = pareto([100, 100, 200, 300, 400], [30, 31, 30.5, 33, 32])
    assert r == [100, 300] and p == [31, 33]


def _fritsch_carlson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The slopes the tool computed by hand before SciPy: Fritsch-Carlson with the three-point end rule."""
    h, delta, n = np.diff(x), np.diff(y) / np.diff(x), len(x)
    d = np.zeros(n)
    if n == 2:
        return np.full(n, delta[0])
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    for end, (h0, h1, d0, d1) in ((0, (h[0], h[1], delta[0], delta[1])),
                                  (n - 1, (h[-1], h[-2], delta[-1], delta[-2]))):
        s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(s) != np.sign(d0):
            s = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
            s = 3 * d0
        d[end] = s
    return d


def _hermite(x: np.ndarray, y: np.ndarray, d: np.ndarray, grid: np.ndarray) -> np.ndarray:
    k = np.clip(np.searchsorted(x, grid, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    t = (grid - x[k]) / h
    return (y[k] * (2 * t**3 - 3 * t**2 + 1) + d[k] * h * (t**3 - 2 * t**2 + t)
            + y[k + 1] * (-2 * t**3 + 3 * t**2) + d[k + 1] * h * (t**3 - t**2))


@pytest.mark.parametrize("y", [[0.0, 2.0, 2.5, 5.0, 5.2], [0.0, 2.0, 1.0, 5.0, 4.0], [3.0, 1.0]])
def test_pchip_integral_is_the_fritsch_carlson_interpolants(y: list[float]) -> None:
    # SciPy's PCHIP is the interpolant the tool integrated by hand before: equal within rounding.
    x = np.array([0.0, 1.0, 3.0, 4.0, 7.0][:len(y)])
    ys = np.array(y)
    lo, hi = x[0] + 0.1 * (x[1] - x[0]), x[-1] - 0.1 * (x[-1] - x[-2])
    grid = np.linspace(lo, hi, 20001)
    vals = _hermite(x, ys, _fritsch_carlson(x, ys), grid)
    trapezoid = float(np.sum((vals[1:] + vals[:-1]) / 2 * np.diff(grid)))
    assert pchip_integral(x, ys, lo, hi) == pytest.approx(trapezoid, rel=1e-6)
    if all(np.diff(ys) > 0):
        assert all(np.diff(vals) >= -1e-12)  # monotone data stays monotone


def test_bd_of_a_curve_against_itself_is_zero() -> None:
    rate, psnr = [100.0, 180.0, 400.0, 700.0, 1500.0], [29.0, 31.5, 34.0, 35.2, 38.9]
    for method in ("pchip", "cubic"):
        assert bd_rate(rate, psnr, rate, psnr, method) == pytest.approx(0.0, abs=1e-9)
        assert bd_psnr(rate, psnr, rate, psnr, method) == pytest.approx(0.0, abs=1e-9)


def _log_line(rates: list[float], db_per_decade: float = 10.0, offset: float = 0.0) -> list[float]:
    """PSNR a straight line in log10 rate (PCHIP reproduces it exactly): offset + slope * log10(rate)."""
    return [offset + db_per_decade * math.log10(r) for r in rates]


def test_bd_rate_fixed_over_a_range_inside_both_curves() -> None:
    # Anchor and test both span 20-50 dB; the test needs half the rate everywhere: -50 % over any range.
    anchor = [10.0 ** (p / 10) for p in range(20, 51, 3)]
    psnr = [float(p) for p in range(20, 51, 3)]
    half = [r / 2 for r in anchor]
    assert bd_rate_fixed(anchor, psnr, half, psnr) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate_fixed(anchor, psnr, half, psnr, 31.0, 33.5, "cubic") == pytest.approx(-50.0, abs=1e-9)
    # Linear drift of the test's log-rate, 0.01 (P - 30): its mean over [30, 42] is 0.06, over [30, 36] 0.03.
    drift = [10.0 ** (p / 10 + 0.01 * (p - 30)) for p in psnr]
    assert bd_rate_fixed(anchor, psnr, drift, psnr) == pytest.approx((10**0.06 - 1) * 100, rel=1e-9)
    assert bd_rate_fixed(anchor, psnr, drift, psnr, 30, 36) == pytest.approx((10**0.03 - 1) * 100, rel=1e-9)


def test_bd_rate_fixed_differs_from_the_common_range() -> None:
    # The test needs half the anchor's rate but stops at 39 dB, the anchor goes on to 45 dB: the common range
    # (30-39 dB) gives -50 %, the fixed 30-42 dB range gives nothing (the test does not reach 42 dB).
    psnr = [30.0, 33.0, 36.0, 39.0, 42.0, 45.0]
    anchor = [10.0 ** (p / 10) for p in psnr]
    test = [r / 2 for r in anchor[:4]]
    assert bd_rate(anchor, psnr, test, psnr[:4]) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate_fixed(anchor, psnr, test, psnr[:4]) is None
    assert bd_rate_fixed(anchor, psnr, test, psnr[:4], 30, 36) == pytest.approx(-50.0, abs=1e-9)


def test_bd_rate_fixed_none_when_a_curve_does_not_span_the_range() -> None:
    psnr = [30.0, 34.0, 38.0, 42.0]
    rate = [100.0, 200.0, 400.0, 800.0]
    assert bd_rate_fixed(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)  # exactly [30, 42]: spans
    assert bd_rate_fixed(rate, psnr, rate[1:], psnr[1:]) is None  # the test starts at 34 dB
    assert bd_rate_fixed(rate[:3], psnr[:3], rate, psnr) is None  # the anchor tops at 38 dB
    assert bd_rate_fixed(rate, psnr, rate, psnr, 29.9, 42) is None
    # Pareto first: a dominated point (400 kbit/s for less than 300 kbit/s gives) changes nothing.
    assert bd_rate_fixed([100.0, 200.0, 400.0, 300.0], [30.0, 34.0, 41.0, 43.0], rate, psnr) == pytest.approx(
        bd_rate_fixed([100.0, 200.0, 300.0], [30.0, 34.0, 43.0], rate, psnr))
    assert bd_rate_fixed(rate[::3], psnr[::3], rate, psnr, method="cubic") is None  # cubic needs 4 points
    with pytest.raises(ValueError):
        bd_rate_fixed(rate, psnr, rate, psnr, 42, 30)


def test_db_behind_interpolates_in_log_rate() -> None:
    # Anchor: P = 10 log10(R) + 10, Pareto points at 100-1600 kbit/s (20-42 dB).
    rate = [100.0, 200.0, 400.0, 800.0, 1600.0]
    psnr = _log_line(rate, offset=10.0)
    assert db_behind(rate, psnr, 400.0) == pytest.approx(psnr[2])
    assert db_behind(rate, psnr, 300.0) == pytest.approx(10 * math.log10(300.0) + 10, abs=1e-9)
    assert db_behind(rate, psnr, 100.0) == pytest.approx(30.0)  # the ends belong to the span
    assert db_behind(rate, psnr, 1600.0) == pytest.approx(10 * math.log10(1600) + 10)
    # A test point at 250 kbit/s and 31 dB is this many dB behind:
    assert db_behind(rate, psnr, 250.0) - 31.0 == pytest.approx(10 * math.log10(250) + 10 - 31, abs=1e-9)
    # A dominated anchor point (more rate, less PSNR) is ignored.
    assert db_behind(rate + [1000.0], psnr + [20.0], 300.0) == pytest.approx(db_behind(rate, psnr, 300.0))


def test_db_behind_none_outside_the_anchors_rates() -> None:
    rate = [100.0, 200.0, 400.0]
    psnr = [30.0, 33.0, 36.0]
    assert db_behind(rate, psnr, 99.9) is None
    assert db_behind(rate, psnr, 400.1) is None
    assert db_behind([100.0], [30.0], 100.0) is None  # one point: no curve
    assert db_behind([], [], 100.0) is None


def test_kde_is_scotts_rule_and_integrates_to_one() -> None:
    grid = np.linspace(0, 60, 6001)
    values = np.array([30.0, 31.0, 31.5, 35.0])
    dens = gaussian_kde(values, grid)
    assert float(np.sum(dens) * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-3)
    bw = values.std(ddof=1) * len(values) ** (-1 / 5)  # Scott's bandwidth, the formula the tool used before
    by_hand = np.exp(-0.5 * ((grid[:, None] - values) / bw) ** 2).sum(axis=1) / (len(values) * bw
                                                                               * math.sqrt(2 * math.pi))
    assert np.allclose(dens, by_hand, rtol=1e-9, atol=1e-12)
    # Frames that all score alike: a narrow peak, not a singular-covariance error.
    flat = gaussian_kde([33.0] * 5, grid)
    assert float(np.sum(flat) * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-3)
    assert grid[int(np.argmax(flat))] == pytest.approx(33.0, abs=0.01)


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
    # "w" has another width (as a curve whose width follows the QP): a training of its own.
    for name, kwargs in (("c", {"qp": 42}), ("u", {"coder": "raw32"}), ("w", {"qp": 46, "hidden": 6})):
        # keyint 1: every chunk a key chunk, so the training does not depend on the QP; the encoding is
        # band-limited to the frame size by the Encoder, which the shared path must follow.
        settings: dict[str, object] = {"steps": 12, "hidden": 8, "layers": 2, "chunk_frames": 2, "device": "cpu",
                                       "keyint": 1, **kwargs}
        cfg = EncoderConfig.from_preset("ultrafast", **settings)  # type: ignore[arg-type]
        points.append((name, cfg, tmp_path / f"shared_{name}.invr"))
    coded, _, fits = encode_invr_points(frames, info, points, log=lambda s: None)
    assert len(fits) == 4  # two chunks, two widths
    assert [p.label for p in coded] == ["c", "u", "w"]
    for (name, cfg, path), point in zip(points, coded):
        assert point.config == Encoder(info, cfg).config
        # The plain Encoder, with PSNR checks every 4 steps: the checks must not change the weights.
        plain = replace(cfg, recipe=replace(cfg.recipe, eval_every=4))
        encode_with_encoder(frames, info, plain, tmp_path / f"plain_{name}.invr")
        assert path.read_bytes() == (tmp_path / f"plain_{name}.invr").read_bytes()
        psnrs, _ = decode_invr_psnr(path, frames)
        with invrcodec.open(path) as f:
            assert [e.train_psnr for e in f.index] == [p.train_psnr for p in point.packets]
        assert len(psnrs) == 4 and all(math.isfinite(v) for v in psnrs)
    # P-chunks train from the previous chunk's decoded weights, which depend on the QP: each point trains its
    # own, after the key chunk trained once; the files are still the Encoder's, byte for byte.
    predicted = [replace(points[0][1], keyint=2, qp=qp) for qp in (34, 42)]
    assert not all_key_chunks(predicted[0], info, 4) and all_key_chunks(predicted[0], info, 2)
    todo = [(f"p{cfg.qp}", cfg, tmp_path / f"p{cfg.qp}.invr") for cfg in predicted]
    _, _, key_fits = encode_invr_points(frames, info, todo, log=lambda s: None)
    assert len(key_fits) == 1  # chunk 0 only; chunk 1 is a P-chunk
    for name, cfg, path in todo:
        encode_with_encoder(frames, info, cfg, tmp_path / f"plain_{name}.invr")
        assert path.read_bytes() == (tmp_path / f"plain_{name}.invr").read_bytes()
    assert todo[0][2].read_bytes() != todo[1][2].read_bytes()


def test_points_of_one_width_train_apart_where_the_qp_changes_the_steps() -> None:
    from invrcodec.codec.ladder import training_key

    def key(qp: int) -> object:
        return training_key(EncoderConfig.from_preset("fast", qp=qp, hidden=128, device="cpu"))

    # fast trains twice its steps at QP 38 and finer (presets.BANDS_BY_QP): rd.py's h128 curve is one
    # network at every QP, but two trainings
    assert key(35) == key(38) != key(42) == key(46)


def test_rate_aware_points_train_per_qp(tmp_path: Path, one_thread: None) -> None:
    """With rate-aware training (Recipe.rate) a key chunk's training depends on the QP: the shared path trains
    it once per QP and still writes the Encoder's bytes."""
    frames = synthetic_frames(16, 16, 4)
    info = StreamInfo(16, 16, 4, Fraction(25), Fraction(1, 25))
    base = EncoderConfig.from_preset("ultrafast", steps=12, hidden=8, layers=2, chunk_frames=4, device="cpu",
                                     keyint=1)
    base = replace(base, recipe=replace(base.recipe, rate=1e5, rate_span=0.5))
    todo = [(f"q{qp}", replace(base, qp=qp), tmp_path / f"q{qp}.invr") for qp in (34, 42)]
    _, _, fits = encode_invr_points(frames, info, todo, log=lambda s: None)
    assert len(fits) == 2  # one chunk, trained for each QP
    assert fits[0].state["layers.1.weight"].tolist() != fits[1].state["layers.1.weight"].tolist()
    for name, cfg, path in todo:
        encode_with_encoder(frames, info, cfg, tmp_path / f"plain_{name}.invr")
        assert path.read_bytes() == (tmp_path / f"plain_{name}.invr").read_bytes()


# -- baselines and curves ------------------------------------------------------------------------------------
def colourful_clip(width: int = 32, height: int = 32, frames: int = 6) -> object:
    """Blocks of saturated random colours drifting sideways: chroma detail that 4:2:0 halves."""
    rng = np.random.default_rng(3)
    tiles = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    image = np.kron(tiles, np.ones((4, 4, 1), np.uint8))
    data = np.stack([np.roll(image, t, axis=1) for t in range(frames)])
    info = StreamInfo(width, height, frames, Fraction(25), Fraction(1, 25))
    return Clip("colour", "synthetic", data, info, (width, height))


def test_444_baselines_are_yuv444p_and_beat_420_at_equal_rate(tmp_path: Path) -> None:
    clip = colourful_clip()
    points = {}
    for key in ("h264", "h264-444", "h265-444"):
        base = BASELINES[key]
        path = tmp_path / f"{key}.{base.ext}"
        points[key] = encode_baseline(clip, base, 400.0, path)
        with av.open(str(path), format=base.fmt) as container:  # probe the stream independently of the tool
            frames = list(container.decode(video=0))
            ctx = container.streams.video[0].codec_context
            assert {f.format.name for f in frames} == {base.pix_fmt} and ctx.pix_fmt == base.pix_fmt
            assert ctx.profile == {"h264": "High", "h264-444": "High 4:4:4 Predictive",
                                   "h265-444": "Rext"}[key]  # x265's Main 4:4:4 is a range-extensions profile
        assert (points[key].pix_fmt, points[key].profile) == (base.pix_fmt, ctx.profile)
    assert BASELINES["h264-444"].label == "H.264 4:4:4" and BASELINES["h264"].label == "H.264 4:2:0"
    # At the same target rate (and no more bytes), 4:4:4 scores higher in RGB PSNR than 4:2:0.
    p420, p444 = points["h264"], points["h264-444"]
    assert p444.bytes <= 1.2 * p420.bytes
    assert p444.psnr_mean > p420.psnr_mean + 3
    # RGB -> YUV -> RGB alone: 4:2:0 loses most of this clip's colour detail, 4:4:4 only rounding.
    assert roundtrip_psnr(clip.frames, "yuv444p") > 40
    assert roundtrip_psnr(clip.frames, "yuv420p") < 30


def test_x26x_baselines_sweep_crf_down_to_near_lossless(tmp_path: Path) -> None:
    assert (min(CRF_SWEEP), max(CRF_SWEEP)) == (2, 51)
    # MPEG-1/2 keep their bitrates only; x264/x265 add the CRF points after them.
    mpeg1 = baseline_sweep(BASELINES["mpeg1"], [100.0], CRF_SWEEP)
    assert [t.setting for t in mpeg1] == ["target=100.0 kbit/s"]
    assert [t.setting for t in baseline_sweep(BASELINES["h265"], [100.0], (2, 51))] == [
        "target=100.0 kbit/s", "crf=2", "crf=51"]
    clip = colourful_clip()
    for key in ("h264-444", "h265-444"):
        base = BASELINES[key]
        fine, coarse = (encode_baseline(clip, base, Target(crf=crf), tmp_path / f"{key}_crf{crf}.{base.ext}")
                        for crf in (2, 51))
        assert (fine.setting, coarse.setting, fine.pix_fmt) == ("crf=2", "crf=51", "yuv444p")
        assert fine.psnr_mean > 45 and coarse.psnr_mean < 25 and fine.bytes > coarse.bytes
    with pytest.raises(ValueError, match="no CRF mode"):
        encode_baseline(clip, BASELINES["mpeg1"], Target(crf=10), tmp_path / "mpeg1.m1v")
    with pytest.raises(ValueError):
        Target(kbps=100.0, crf=10)


def test_rd_range_arguments() -> None:
    args = rd.parse_args(["x.mp4"])
    assert (args.fixed_range, args.behind_bpp, args.crfs) == ((30.0, 42.0), (0.1, 0.5), list(CRF_SWEEP))
    args = rd.parse_args(["x.mp4", "--fixed-range", "28,40", "--behind-bpp", "0.05,1", "--crfs", ""])
    assert (args.fixed_range, args.behind_bpp, args.crfs) == ((28.0, 40.0), (0.05, 1.0), [])
    with pytest.raises(SystemExit):
        rd.parse_args(["x.mp4", "--fixed-range", "42,30"])


def test_named_curves_are_the_package_configs() -> None:
    args = rd.parse_args(["x.mp4", "--preset", "ultrafast", "--invr", "default,v1"])
    common = {"qp": 42, "device": args.device, "seed": args.seed}
    v1 = rd.curve_config(args, rd.NAMED_CURVES["v1"][0], 42)
    assert v1 == EncoderConfig.from_preset("ultrafast", enc_dims=(64, 64, 32), keyint=1, chunk_frames=15,
                                           steps=PRESETS["ultrafast"].steps // 4, **common)  # 15 of 90 frames
    info = StreamInfo(128, 128, 90, Fraction(25), Fraction(1, 25))
    resolved = Encoder(info, v1).config
    assert resolved.representation.enc_dims == (64, 64, 32) and resolved.keyint == 1
    assert all_key_chunks(v1, info, 90)
    c45 = rd.curve_config(args, rd.NAMED_CURVES["c45"][0], 42)
    assert c45 == EncoderConfig.from_preset("ultrafast", chunk_frames=45, steps=PRESETS["ultrafast"].steps // 2,
                                            **common)
    # default: the package's defaults for the preset, whatever they are.
    default = rd.curve_config(args, rd.NAMED_CURVES["default"][0], 42)
    assert default == EncoderConfig.from_preset("ultrafast", **common)
    assert [c.name for c in rd.invr_curves(args)] == ["INVR-C default", "INVR-C v1"]
    grid = rd.parse_args(["x.mp4", "--invr", "", "--hidden", "16,32", "--keyint", "2"])
    chunk = EncoderConfig.from_preset().representation.chunk_frames
    assert [c.name for c in rd.invr_curves(grid)] == [f"INVR-C h16 c{chunk} k2", f"INVR-C h32 c{chunk} k2"]


# -- end to end --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evalclip") / "synth.mp4"
    return write_clip(path, synthetic_frames(48, 40, 4), options={"crf": "5", "preset": "ultrafast"})


def test_rd_end_to_end(small_clip: Path, tmp_path: Path) -> None:
    # Two curves: v1 (15-frame chunks: one 4-frame key chunk) and a grid curve of two 2-frame chunks with keyint
    # 2 (a key chunk trained once for both QPs, then a P-chunk trained per QP).
    out = tmp_path / "rd"
    baselines = ["MPEG-1 4:2:0", "H.264 4:2:0", "H.264 4:4:4", "H.265 4:4:4"]
    proc = run([sys.executable, TOOLS / "rd.py", small_clip, "--size", "32", "--frames", "4", "--steps", "20",
                "--preset", "ultrafast", "--invr", "v1", "--hidden", "16", "--chunk-frames", "2", "--keyint", "2",
                "--qp", "34,42", "--bitrates", "40", "--baselines", "mpeg1,h264,h264-444,h265-444",
                "--threads", "1", "--out", out], timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.count(b"key chunks trained once for all points") == 2
    report = json.loads((out / "results.json").read_text())
    (clip,) = report["clips"]
    assert (clip["width"], clip["height"], clip["frames"]) == (32, 32, 4)
    assert {p["codec"] for p in clip["points"]} == {"INVR-C", "INVR-U", *baselines}
    assert {p["curve"] for p in clip["points"]} == {"INVR-C v1", "INVR-C h16 c2 k2", "INVR-U v1", *baselines}
    for p in clip["points"]:
        assert Path(p["file"]).stat().st_size == p["bytes"] > 0
        assert len(p["psnr_per_frame"]) == 4
        assert p["psnr_mean"] == pytest.approx(np.mean(p["psnr_per_frame"]), abs=1e-3)
        assert p["kbps"] == pytest.approx(p["bytes"] * 8 / 1000 / (4 / 25), rel=1e-3)
        assert p["pix_fmt"] == {"H.264 4:4:4": "yuv444p", "H.265 4:4:4": "yuv444p"}.get(
            p["codec"], None if p["codec"].startswith("INVR") else "yuv420p")
    v1 = sorted((p for p in clip["points"] if p["curve"] == "INVR-C v1"), key=lambda p: p["bytes"])
    invr_u = next(p for p in clip["points"] if p["codec"] == "INVR-U")
    assert v1[-1]["bytes"] < invr_u["bytes"]
    with invrcodec.open(v1[0]["file"]) as f:
        assert f.header.representation.enc_dims == (64, 64, 32) and f.frame_count == 4
    predicted = next(p for p in clip["points"] if p["curve"] == "INVR-C h16 c2 k2")
    with invrcodec.open(predicted["file"]) as f:
        assert f.header.representation.hidden == 16
        assert [e.prediction for e in f.index] == [Prediction.KEY, Prediction.PREVIOUS]
    assert "keyint=2" in clip["invr_curves"]["INVR-C h16 c2 k2"]
    assert set(clip["roundtrip_psnr"]) == {"yuv420p", "yuv444p"}
    invr_rows = [r for r in clip["bd"] if r["kind"] == "invr"]
    assert [(r["test"], r["anchor"]) for r in invr_rows] == [("INVR-C v1", "INVR-C h16 c2 k2")]
    base_rows = [(r["test"], r["anchor"]) for r in clip["bd"] if r["kind"] == "baseline"]
    assert sorted(base_rows) == sorted((t, a) for t in ("INVR-C v1", "INVR-C h16 c2 k2") for a in baselines)
    assert [a for t, a in base_rows][:2] == ["H.264 4:4:4", "H.265 4:4:4"]  # 4:4:4 first: the headline
    assert set(clip["table1"]) == {"INVR-C v1", "INVR-C h16 c2 k2", "INVR-U v1", *baselines}
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(clip["points"])
    table = (out / "table.md").read_text()
    assert "| PSNR | INVR-C v1 |" in table and "| H.264 4:4:4 |" in table and "BD-rate" in table
    assert "H.264 4:4:4: yuv444p, profile High 4:4:4 Predictive" in table
    for name in ("rd_32.png", "perframe_32.png", "density_32.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --replot recomputes the same analysis from results.json alone.
    again = tmp_path / "again"
    proc = run([sys.executable, TOOLS / "rd.py", "--replot", out / "results.json", "--out", again])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    (clip2,) = json.loads((again / "results.json").read_text())["clips"]
    assert clip2["bd"] == clip["bd"] and clip2["table1"] == clip["table1"]
    assert (again / "table.md").read_text().split("\n")[1:] == table.split("\n")[1:]


def test_rd_replots_the_committed_results(tmp_path: Path) -> None:
    """docs/rd128/results.json (written before the 4:4:4 baselines and named curves) still replots."""
    results = ROOT / "docs" / "rd128" / "results.json"
    if not results.exists():
        pytest.skip("docs/rd128/results.json is not in this checkout")
    proc = run([sys.executable, TOOLS / "rd.py", "--replot", results, "--out", tmp_path])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    old = json.loads(results.read_text())
    new = json.loads((tmp_path / "results.json").read_text())
    for c_old, c_new in zip(old["clips"], new["clips"]):
        assert len(c_new["points"]) == len(c_old["points"])
        for r in (r for r in c_new["bd"] if r["kind"] == "baseline"):
            assert r["anchor"] in {p["curve"] for p in c_old["points"]}
    assert (tmp_path / "table.md").read_text().count("| PSNR |") == 1


def test_rd_replots_a_folder_with_the_whole_range(tmp_path: Path) -> None:
    """--replot FOLDER on docs/rd128v3 (INVR tops at 36-38 dB there): the whole-range tables appear."""
    folder = ROOT / "docs" / "rd128v3"
    if not (folder / "results.json").exists():
        pytest.skip("docs/rd128v3/results.json is not in this checkout")
    proc = run([sys.executable, TOOLS / "rd.py", "--replot", folder, "--out", tmp_path])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    table = (tmp_path / "table.md").read_text()
    assert "| carphone_pristine | INVR-C default | H.264 4:4:4 | does not reach 30–42 dB |" in table
    assert "dB behind H.264 4:4:4 at equal rate" in table and "outside the baseline's rates" in table
    assert "| carphone_pristine | H.264 4:4:4 | 47.32 |" in table  # the baseline's top PSNR
    (clip, _) = json.loads((tmp_path / "results.json").read_text())["clips"]
    assert {r["anchor"] for r in clip["whole_range"]["rows"]} == {p["curve"] for p in clip["points"]
                                                                   if not p["codec"].startswith("INVR")}


# -- the whole range: fixed-range BD-rate, dB behind at equal rate, top PSNR --------------------------------
def _base_db(bpp: float) -> float:
    """The synthetic baseline: 40 dB at 1 bpp, 10 dB more per decade of rate (a straight line in log-rate)."""
    return 40 + 10 * math.log10(bpp)


def _synthetic(codec: str, bpps: list[float], db: object) -> list[Point]:
    """Points of a 2-frame 1000x1000 one-second clip (so kbit/s = 2000 x bpp) at PSNR ``db(bpp)``."""
    points = []
    for bpp in bpps:
        nbytes = round(bpp * 2 * 1000 * 1000 / 8)
        psnr = db(nbytes * 8 / 2e6)  # type: ignore[operator]
        kind = "INVR-C" if codec.startswith("INVR-C") else codec
        points.append(Point(kind, codec, f"bpp={bpp}", "-", nbytes, "synthetic", 2, 1.0, 1000, 1000,
                            [psnr, psnr], 0.0, 0.0))
    return points


@pytest.fixture
def whole_range_points() -> list[Point]:
    """INVR-C a: 3 dB behind the baseline at every rate, topping at 36 dB; INVR-C b: the baseline's PSNR at
    half its rate (3.01 dB ahead), from 30 to 47.8 dB, its top point (3 bpp) beyond the baseline's rates (up
    to 2 bpp); and an MPEG-1 that only covers 0.2-0.3 bpp."""
    return (_synthetic("INVR-C a", [0.05, 0.1, 0.2, 0.4, 0.8], lambda b: _base_db(b) - 3)
            + _synthetic("INVR-C b", [0.05, 0.1, 0.2, 0.5, 1.0, 3.0], lambda b: _base_db(2 * b))
            + _synthetic("H.264 4:4:4", [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0], _base_db)
            + _synthetic("MPEG-1 4:2:0", [0.2, 0.3], lambda b: _base_db(b) - 5))


def _write(out: Path, points: list[Point], **ranges: tuple[float, float]) -> dict[str, object]:
    machine = {"date": "-", "cpu": "-", "cpu_count": 1, "torch_threads": 1}
    report = {"command": "synthetic", "machine": machine}
    meta = {"name": "synth", "width": 1000, "height": 1000, "frames": 2, "raw_bytes": 6_000_000}
    written = write_outputs(out, report, [(meta, points)], 38, "t", 30, **ranges)  # type: ignore[arg-type]
    assert {out / "range.csv", out / "behind.csv", out / "table.md"} <= set(written)
    (clip,) = json.loads((out / "results.json").read_text())["clips"]
    return clip  # type: ignore[no-any-return]


def test_whole_range_figures_of_synthetic_curves(whole_range_points: list[Point], tmp_path: Path) -> None:
    clip = _write(tmp_path, whole_range_points)
    whole = clip["whole_range"]
    assert (whole["psnr_range_db"], whole["bpp_range"]) == ([30.0, 42.0], [0.1, 0.5])
    rows = {(r["test"], r["anchor"]): r for r in whole["rows"]}
    assert list(rows) == [("INVR-C a", "H.264 4:4:4"), ("INVR-C a", "MPEG-1 4:2:0"),
                          ("INVR-C b", "H.264 4:4:4"), ("INVR-C b", "MPEG-1 4:2:0")]
    a, b = rows["INVR-C a", "H.264 4:4:4"], rows["INVR-C b", "H.264 4:4:4"]
    assert a["bd_rate_fixed_pchip"] is None  # a tops at 36 dB
    assert b["bd_rate_fixed_pchip"] == pytest.approx(-50.0, abs=1e-6)  # half the rate at every PSNR
    assert [r["db_behind"] for r in a["behind"]] == pytest.approx([3.0] * 5, abs=1e-6)
    assert [r["db_behind"] for r in b["behind"][:-1]] == pytest.approx([-10 * math.log10(2)] * 5, abs=1e-6)
    top = b["behind"][-1]
    assert (top["bpp"], top["anchor_psnr"], top["db_behind"]) == (3.0, None, None)
    assert a["mean_db_behind"] == pytest.approx(3.0, abs=1e-4)  # points at 0.1, 0.2 and 0.4 bpp
    assert b["mean_db_behind"] == pytest.approx(-3.0103, abs=1e-4)
    mpeg1 = rows["INVR-C a", "MPEG-1 4:2:0"]
    assert [r["anchor_psnr"] is not None for r in mpeg1["behind"]] == [False, False, True, False, False]
    assert mpeg1["mean_db_behind"] == pytest.approx(-2.0, abs=1e-4) and mpeg1["bd_rate_fixed_pchip"] is None
    assert clip["top_psnr"]["INVR-C a"]["psnr"] == pytest.approx(_base_db(0.8) - 3, abs=1e-4)
    assert clip["top_psnr"]["H.264 4:4:4"]["psnr"] == pytest.approx(_base_db(2.0), abs=1e-4)

    table = (tmp_path / "table.md").read_text()
    assert "| synth | INVR-C a | H.264 4:4:4 | does not reach 30–42 dB | 3.00 dB |" in table
    assert "| synth | INVR-C b | H.264 4:4:4 | -50.0 % | -3.01 dB |" in table
    # MPEG-1 covers only b's point at 0.2 bpp: 5 + 3.01 dB below it.
    assert "| synth | INVR-C b | MPEG-1 4:2:0 | does not reach 30–42 dB | -8.01 dB |" in table
    assert "| synth | INVR-C a | 36.03 | 1600.0 | 0.8000 | bpp=0.8 |" in table  # top PSNR
    assert table.index("dB behind H.264 4:4:4 at equal rate") < table.index("dB behind MPEG-1 4:2:0 at equal")
    assert "| synth | INVR-C a | bpp=0.1 | 0.1000 | 200.0 | 27.00 | 30.00 | +3.00 |" in table
    assert ("| synth | INVR-C b | bpp=3.0 | 3.0000 | 6000.0 | 47.78 | outside the baseline's rates | – |"
            in table)
    with open(tmp_path / "range.csv") as f:
        range_rows = list(csv.DictReader(f))
    assert len(range_rows) == 4 and range_rows[0]["bd_rate_fixed_pchip"] == ""
    assert float(range_rows[2]["bd_rate_fixed_pchip"]) == pytest.approx(-50.0, abs=1e-6)
    with open(tmp_path / "behind.csv") as f:
        behind = list(csv.DictReader(f))
    assert len(behind) == (5 + 6) * 2 and behind[0]["anchor"] == "H.264 4:4:4"


def test_whole_range_follows_the_ranges_asked_for(whole_range_points: list[Point], tmp_path: Path) -> None:
    clip = _write(tmp_path, whole_range_points, psnr_range=(30.0, 36.0), bpp_range=(0.05, 0.1))
    rows = {(r["test"], r["anchor"]): r for r in clip["whole_range"]["rows"]}
    a = rows["INVR-C a", "H.264 4:4:4"]
    # 3 dB behind on a 10 dB/decade line: a needs 10^0.3 times the rate for the same PSNR.
    assert a["bd_rate_fixed_pchip"] == pytest.approx((10**0.3 - 1) * 100, abs=1e-6)
    assert a["mean_db_behind"] == pytest.approx(3.0, abs=1e-4)
    table = (tmp_path / "table.md").read_text()
    assert "| BD-rate pchip over 30–36 dB | mean dB behind at equal rate, 0.05–0.1 bpp |" in table
    assert "| synth | INVR-C a | H.264 4:4:4 | 99.5 % | 3.00 dB |" in table
    # MPEG-1 covers none of a's points from 0.05 to 0.1 bpp: no mean.
    assert "| synth | INVR-C a | MPEG-1 4:2:0 | does not reach 30–36 dB | n/a |" in table


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


def test_rd_rejects_unknown_baseline_and_curve(tmp_path: Path) -> None:
    proc = run([sys.executable, TOOLS / "rd.py", "x.mp4", "--baselines", "vp9", "--out", tmp_path])
    assert proc.returncode == 2 and b"unknown baseline" in proc.stderr
    proc = run([sys.executable, TOOLS / "rd.py", "x.mp4", "--invr", "default,v0", "--out", tmp_path])
    assert proc.returncode == 2 and b"unknown INVR curve 'v0'" in proc.stderr


def test_rd_on_real_clip(shared_media: Path, tmp_path: Path) -> None:
    """4 frames of carphone at 32x32, one baseline bitrate: the paper's preprocessing on real footage."""
    out = tmp_path / "rd"
    proc = run([sys.executable, TOOLS / "rd.py", shared_media / "carphone_pristine.mp4", "--size", "32",
                "--frames", "4", "--steps", "20", "--preset", "ultrafast", "--invr", "", "--hidden", "16",
                "--chunk-frames", "4", "--keyint", "1", "--qp", "38", "--compare-refine", "--baselines",
                "h264-444", "--bitrates", "60", "--threads", "1", "--out", out], timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    (clip,) = json.loads((out / "results.json").read_text())["clips"]
    assert (clip["source_width"], clip["source_height"]) == (176, 144)
    assert {p["codec"] for p in clip["points"]} == {"INVR-C", "INVR-U", "H.264 4:4:4"}
    # --compare-refine: the same training coded with and without refinement, as two curves of one size each.
    invr_c = {p["curve"]: p for p in clip["points"] if p["codec"] == "INVR-C"}
    assert set(invr_c) == {"INVR-C h16 c4 k1", "INVR-C h16 c4 k1 no-refine"}
    sizes = [invr_c[c]["bytes"] for c in ("INVR-C h16 c4 k1", "INVR-C h16 c4 k1 no-refine")]
    assert abs(sizes[0] - sizes[1]) < 0.1 * sizes[1]  # refinement moves values, not the step sizes
    h264 = next(p for p in clip["points"] if p["codec"] == "H.264 4:4:4")
    assert h264["psnr_mean"] > 20 and h264["pix_fmt"] == "yuv444p"
