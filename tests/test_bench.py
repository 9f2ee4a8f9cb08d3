"""tools/bench.py runs end to end and writes the JSON it promises; ``render`` equals ``render_reference``.

Timing is never asserted here (STYLE: tests never assert on wall time); the benchmark only has to run and
report. The decoder checks are the correctness half of issue #6: the fast ``render`` must stay within one
code value of the textbook per-pixel pass, on any network, encoding and frame size, and repeat bit for bit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from invrcodec.codec import decoder
from invrcodec.codec.decoder import render, render_reference
from invrcodec.net.model import INVRNet
from invrcodec.types import EncodingKind, NetworkKind, Representation

ROOT = Path(__file__).resolve().parents[1]


def random_net(rep: Representation, seed: int = 0) -> INVRNet:
    """A random network whose outputs span the whole code range (clamping included), not just mid-grey."""
    torch.manual_seed(seed)
    net = INVRNet(rep).eval()
    with torch.no_grad():
        net.out.weight.mul_(6.0)
        net.out.bias.uniform_(-0.5, 0.5)
    return net


REPS = {
    "siren-sinusoidal": Representation(hidden=24, layers=3, enc_dims=(6, 5, 3)),
    "siren-sinusoidal-nocoord": Representation(hidden=16, layers=2, enc_dims=(4, 4, 2), prepend_coord=False),
    "siren-gaussian": Representation(hidden=16, layers=2, encoding=EncodingKind.GAUSSIAN, sigma=0.05,
                                     enc_dims=(7, 5, 3)),
    "siren-none": Representation(hidden=16, layers=3, encoding=EncodingKind.NONE, enc_dims=(0, 0, 0)),
    "relu-sinusoidal": Representation(network=NetworkKind.RELU, hidden=24, layers=3, enc_dims=(6, 5, 3)),
    "relu-gaussian": Representation(network=NetworkKind.RELU, hidden=16, layers=2,
                                    encoding=EncodingKind.GAUSSIAN, sigma=0.05, enc_dims=(4, 4, 2)),
    "relu-none": Representation(network=NetworkKind.RELU, hidden=16, layers=1, encoding=EncodingKind.NONE,
                                enc_dims=(0, 0, 0)),
}


@pytest.mark.parametrize("name", sorted(REPS))
@pytest.mark.parametrize("sizes", [(3, 7, 13), (2, 13, 7), (1, 1, 1), (4, 16, 16)])
def test_render_matches_reference(name: str, sizes: tuple[int, int, int]) -> None:
    net = random_net(REPS[name])
    fast, ref = render(net, sizes), render_reference(net, sizes)
    assert fast.shape == ref.shape == (sizes[0], sizes[1], sizes[2], 3) and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - ref.astype(int)).max() <= 1
    assert np.array_equal(fast, render(net, sizes))  # deterministic: the same bytes again
    if sizes[1] * sizes[2] > 1:
        assert ref.std() > 10  # the outputs exercise the code range, not one grey level


@pytest.mark.parametrize("tile", [1, 5, 13, 40])
def test_render_tiles_and_frame_ranges(monkeypatch: pytest.MonkeyPatch, tile: int) -> None:
    """Tiles of one row, partial last tiles, a row wider than a tile, and start/stop all give the same frames."""
    net = random_net(REPS["siren-sinusoidal"], seed=3)
    sizes = (5, 9, 11)
    whole = render(net, sizes)
    monkeypatch.setattr(decoder, "RENDER_TILE_PIXELS", tile)
    assert np.abs(render(net, sizes).astype(int) - whole.astype(int)).max() <= 1
    part = render(net, sizes, 2, 4)
    assert part.shape == (2, 9, 11, 3)
    assert np.abs(part.astype(int) - render_reference(net, sizes, 2, 4).astype(int)).max() <= 1
    assert render(net, sizes, 3, 3).shape == (0, 9, 11, 3)


def test_bench_quick_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # One thread: on a shared two-core machine two threads can be many times slower, and this is a smoke run.
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--quick", "--threads", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["schema"] == "invrcodec-bench/1" and data["quick"] is True
    for key in ("cpu", "logical_cpus", "torch_threads", "torch", "datetime_utc", "load_average_before",
                "contended"):
        assert key in data["machine"]
    assert data["machine"]["torch_threads"] == 1

    fit = data["fit"]
    targets = [f"{t:g}" for t in data["settings"]["targets"]]
    presets = data["settings"]["presets"]
    assert set(fit["recipes"]) == {"paper", *presets}
    for clip in fit["clips"].values():
        for name in ("paper", *presets):
            res = clip["recipes"][name]
            assert res["stopped"] in ("target", "steps", "time cap")
            assert res["seconds"] <= res["wall_seconds"] and res["steps"] >= 1
            for tgt in targets:
                t = res["targets"][tgt]
                assert t["reached"] in (True, False) and t["seconds"] > 0
                assert t["reached"] or t["lower_bound"]
        for tgt in targets:
            for name in presets:
                r = clip["ratios"][tgt][name]
                assert r["bound"] in ("exact", "at least", "at most", None)
                assert (r["value"] is None) == (r["bound"] is None)
    for tgt in targets:
        assert set(fit["geomean_ratio"][tgt]) == set(presets)
        assert set(fit["best"][tgt]) == {"preset", "value", "bound"}
    assert fit["goal"]["ratio"] == 30

    cmd = data["command"]  # the whole invr-enc: its own phases, the decoded PSNR, a ratio to the paper
    assert data["settings"]["native_bf16"] in (True, False)
    for row in cmd["clips"].values():
        for run in ("cold", "warm"):
            r = row[run]
            assert r["seconds"] > sum(r["phases"].values()) * 0.5 and {"start-up", "train"} <= set(r["phases"])
            assert r["steps"] and r["bytes"] > 0 and r["decoded_psnr"] > 10
        assert row["ratio"]["bound"] in ("exact", "at least", "at most", None)
    assert cmd["goal"]["ratio"] == 30
    for row in cmd["long"].values():
        assert set(row) == {"keyint 1", "keyint 0"}
        assert all(r["frames"] == data["settings"]["long_frames"] and r["fps"] > 0 for r in row.values())
        assert len(row["keyint 1"]["steps"]) == len(row["keyint 0"]["steps"]) == 2  # 8 frames, 4 a chunk

    dec = data["decode"]
    for clip in dec["clips"].values():
        assert len(clip["sizes"]) == 2  # the training size and the native size
        for row in clip["sizes"].values():
            assert row["render_fps"] > 0 and row["reference_fps"] > 0
            assert row["max_abs_diff"] <= 1 and row["deterministic"] is True
    assert dec["max_abs_diff"] <= 1 and isinstance(dec["goal"]["met"], bool)

    mem = data["memory"]
    short, long = mem["runs"]
    assert long["frames"] == 10 * short["frames"] and long["chunks"] > short["chunks"]
    for run in (short, long):
        for kind in ("encode", "decode"):
            assert run[kind]["peak_rss_mb"] > 0 and run[kind]["frames"] == run["frames"]
    for kind in ("encode", "decode"):
        assert mem["ratio_long_to_short"][kind]["peak"] > 0


def test_bench_parallel_runs_and_reports(shared_media: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_parallel.py"), "--out", str(out), "--device", "cpu",
         "--media", str(shared_media), "--size", "16", "--recipes", "ultrafast,paper", "--batches", "1,2",
         "--scaling-steps", "3", "--no-compile", "--full", "--clip-frames", "35", "--steps", "3"],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["machine"]["device"] == "cpu"
    for name in ("ultrafast", "paper"):
        rows = result["scaling"][name]["rows"]
        assert [r["chunks"] for r in rows] == [1, 2] and rows[0]["speedup_vs_one"] == 1.0
        assert all(r["chunk_steps_per_second"] > 0 for r in rows)
    full = result["full"]
    assert (full["frames"], full["chunks"], full["steps"]) == (35, 3, 3)  # 15 + 15 + 5 frames, all at once
    assert full["decode_fps"] > 0 and full["decoded_psnr_min"] > 0
