"""tools/sweep.py: a short slice of the many-clip sweep, through the real tools, on a real clip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import ROOT, run


def test_a_slice_of_the_sweep_has_no_collapse(shared_media: Path, tmp_path: Path) -> None:
    # Two QPs of one real clip, 32x32 and 4 frames, 250 steps: past the guard's first judged step (200), so a
    # collapsed chunk would be refused by the encoder or flagged by the sweep.
    out = tmp_path / "sweep.jsonl"
    args = [sys.executable, ROOT / "tools" / "sweep.py", "--clips", "carphone_pristine", "--presets", "fast",
            "--qps", "30,46", "--size", "32", "--frames", "4", "--steps", "250", "--json", out]
    first = run(args, timeout=600)
    assert first.returncode == 0, first.stderr.decode() + first.stdout.decode()
    every = [json.loads(line) for line in out.read_text().splitlines()]
    points = [p for p in every if p["preset"] == "fast"]
    assert [(p["clip"], p["qp"]) for p in points] == [("carphone_pristine", 30), ("carphone_pristine", 46)]
    for p in points:
        assert p["bytes"] > 0 and p["psnr"] > p["flat"] + 1.0 and "collapsed" not in p["flags"]
    assert points[0]["bytes"] > points[1]["bytes"]
    # x264 4:4:4 on the same frames at every crf: finer crf, more bytes and more PSNR
    x264 = sorted((p for p in every if p["preset"] == "h264-444"), key=lambda p: p["qp"])
    assert [p["qp"] for p in x264] == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 51]
    assert x264[0]["bytes"] > x264[-1]["bytes"] and x264[0]["psnr"] > x264[-1]["psnr"] + 10
    text = first.stdout.decode()
    assert "15 points: 0 collapsed or refused" in text
    crf18 = next(p["psnr"] for p in x264 if p["qp"] == 18)
    summary = [line for line in text.splitlines() if line.startswith("| carphone_pristine | fast | ")][-1]
    top = max(p["psnr"] for p in points)
    assert f"| {top:.2f} | {crf18:.2f} | {min(40.0, crf18):.2f} | {'yes' if top >= min(40.0, crf18) else 'no'} |" \
        in summary
    again = run(args, timeout=600)  # every point is in the JSON file: nothing is encoded again
    assert again.returncode == 0 and out.read_text().count("\n") == 15
    assert b"fast qp 30:" not in again.stdout and b"h264-444 qp 18:" not in again.stdout  # lines of encodes


def test_the_mean_db_behind_the_baseline_then_and_now_per_clip() -> None:
    import importlib.util

    sys.path.insert(0, str(ROOT / "tools"))  # as the tool does: its shared pieces are tools/evalkit
    spec = importlib.util.spec_from_file_location("invr_sweep_tool", ROOT / "tools" / "sweep.py")
    assert spec is not None and spec.loader is not None
    sweep = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
    spec.loader.exec_module(sweep)
    Point = sweep.Point

    def point(preset: str, qp: int, bpp: float, psnr: float) -> object:
        return Point("clip", preset, qp, 128, 90, None, bpp=bpp, psnr=psnr)

    # x264 rises 6 dB per doubling of the rate: 36 dB at 0.2 bpp, 42 at 0.4
    x264 = [point("h264-444", crf, bpp, psnr) for crf, bpp, psnr in ((30, 0.1, 30.0), (22, 0.2, 36.0),
                                                                    (14, 0.4, 42.0), (6, 0.8, 48.0))]
    before = [*x264, point("fast", 38, 0.2, 30.0), point("fast", 34, 0.4, 33.0), point("fast", 46, 0.05, 25.0)]
    now = [point("fast", 38, 0.2, 33.0), point("fast", 34, 0.4, 39.0)]  # 0.05 bpp: outside 0.1-0.5
    table = sweep.before_and_now(now, before, "h264-444", ["fast"])
    assert "| clip | +7.50 (2) | +3.00 (2) | -4.50 |" in table
    assert "| all | +7.50 (2) | +3.00 (2) | -4.50 |" in table
