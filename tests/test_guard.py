"""The collapse guard (issue 23): a chunk that falls into a flat picture is retried, or refused, never written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run, synthetic_frames
from test_codec import encode_all, tiny_config

from invrcodec.errors import InvrEncodeError
from invrcodec.net.fit import COLLAPSE_DROP_DB, COLLAPSE_MARGIN_DB, FALL_STEPS, FallWatch, Recipe, fit_chunk
from invrcodec.metrics import flat_psnr, rgb_psnr

CPU = torch.device("cpu")
FRAMES = synthetic_frames(16, 16, 4)
REP = tiny_config(hidden=32, chunk_frames=4).representation


def _recipe(lr: float) -> Recipe:
    # 400 steps: past the guard's first judged step (WATCH_STEPS = 200). On this tiny network 5e-3 trains to
    # about 47 dB and 8e-3 or more falls into the flat picture (12.96 dB).
    return Recipe(steps=400, lr=lr, batch=256, eval_every=100, warmup=0)


def test_flat_psnr_is_the_psnr_of_each_frame_at_its_mean_colour() -> None:
    frames = np.random.default_rng(3).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    means = np.floor(frames.reshape(3, -1, 3).mean(axis=1) + 0.5).astype(np.uint8)
    flat = np.broadcast_to(means[:, None, None, :], frames.shape)
    assert flat_psnr(frames) == rgb_psnr(frames, np.ascontiguousarray(flat))
    assert flat_psnr(np.full((2, 4, 4, 3), 77, np.uint8)) == float("inf")


def test_a_collapsing_fit_is_retried_at_half_the_rate() -> None:
    fit = fit_chunk(FRAMES, REP, _recipe(1e-2), device=CPU)  # 1e-2 collapses, 5e-3 does not
    assert fit.retries == 1
    assert fit.psnr > flat_psnr(FRAMES) + 20


def test_a_fit_that_collapses_on_every_try_is_refused() -> None:
    with pytest.raises(InvrEncodeError, match="collapsed .* chunk not written"):
        fit_chunk(FRAMES, REP, _recipe(1.0), device=CPU)  # 1.0, 0.5 and 0.25 all collapse


def _first_fall(estimates: list[float]) -> int | None:
    watch = FallWatch()
    return next((step for step, psnr in enumerate(estimates) if watch.fallen(step, psnr)), None)


def test_an_estimate_that_stays_fallen_is_a_collapse_and_a_spike_is_not() -> None:
    # chaplin at 6,400 steps: 20.8 dB by step 800, then down to 15.4 dB (above its flat picture's 13.7)
    climb = [14.0 + step / 100 for step in range(701)]  # to 21.0 dB
    fallen = climb + [21.0 - COLLAPSE_DROP_DB - 0.5] * (2 * FALL_STEPS)
    assert _first_fall(fallen) == len(climb) + FALL_STEPS
    spikes = climb + ([15.0] * (FALL_STEPS - 1) + [20.0]) * 3 + [21.0] * FALL_STEPS
    assert _first_fall(spikes) is None
    assert _first_fall(climb + [21.0 - COLLAPSE_DROP_DB] * (2 * FALL_STEPS)) is None  # exactly the drop: not


def test_the_encoder_never_writes_a_collapsed_chunk() -> None:
    cfg = tiny_config(hidden=32, chunk_frames=4, steps=400, lr=1.0)
    with pytest.raises(InvrEncodeError, match="chunk not written"):
        encode_all(FRAMES, cfg)


def test_a_healthy_encode_is_clearly_above_its_flat_picture() -> None:
    cfg = tiny_config(hidden=32, chunk_frames=4, steps=400, lr=5e-3)
    _, packets = encode_all(FRAMES, cfg)
    assert all(p.train_psnr > flat_psnr(FRAMES) + COLLAPSE_MARGIN_DB for p in packets)


# -- the same command, the same bytes --------------------------------------------------------------------------
_BUSY = "import time\nend = time.time() + 120\nwhile time.time() < end:\n    pass\n"


def test_the_same_command_gives_the_same_bytes_whatever_else_runs(tiny_y4m: Path, tmp_path: Path) -> None:
    # 1,000 steps: the CPU rule compiles the trunk (fit.CPU_COMPILE_STEPS), and the last 30% train for the rate
    # with weight noise (issue 23: the compiled trunk and the noise are where runs parted). The runs:
    # plain; with -v --benchmark and a cold kernel cache; with two busy processes beside it (pure Python: three
    # busy 2-thread torch processes can still move the arithmetic, docs/results.md, "The same bytes").
    args = ["--steps", "1000", "--frames", "4", "--no-progress", "-y", str(tiny_y4m)]
    outs = [tmp_path / f"{name}.invr" for name in ("plain", "verbose", "busy")]
    first = run(["invr-enc", *args, outs[0]])
    assert first.returncode == 0, first.stderr.decode()
    cold = run(["invr-enc", "-v", "--benchmark", *args, outs[1]],
               env={"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cold-cache")})
    assert cold.returncode == 0, cold.stderr.decode()
    assert b"bench: " in cold.stderr
    busy = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(2)]
    try:
        loaded = run(["invr-enc", *args, outs[2]])
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert loaded.returncode == 0, loaded.stderr.decode()
    data = [p.read_bytes() for p in outs]
    assert data[1] == data[0] and data[2] == data[0]
