"""Decoding speed (tools/bench.py): ``render`` (per-axis tables) against ``render_reference`` (per-pixel
encoding and full MLP) on the same trained weights, at the chunk's size and the clip's native size."""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from evalkit.clips import Clip
from evalkit.report import say
from invrcodec.codec.decoder import build_network, render, render_reference
from invrcodec.codec.presets import PRESETS
from invrcodec.net.fit import fit_chunk
from invrcodec.types import Representation

TARGET_SPEEDUP = 2.0  # issue #6: render at least 2x the frames per second of render_reference


def fit_for_decoding(clip: Clip, rep: Representation,
                     args: argparse.Namespace) -> tuple[dict[str, np.ndarray], str]:
    """Trained weights for a clip's chunk (realistic outputs, not a random network's near-grey frames)."""
    recipe = PRESETS["ultrafast"]
    if args.max_steps:
        recipe = replace(recipe, steps=min(recipe.steps, args.max_steps))
    res = fit_chunk(clip.frames, rep, recipe, device=torch.device("cpu"), seed=args.seed)
    return res.state, f"ultrafast fit ({res.steps} steps, {res.psnr:.2f} dB)"


def time_calls(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, list[np.ndarray]]:
    outs, best = [], math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        outs.append(fn())
        best = min(best, time.perf_counter() - t0)
    return best, outs


def bench_decode(clips: dict[str, Clip], rep: Representation, args: argparse.Namespace,
                 trained: dict[str, tuple[dict[str, np.ndarray], str]]) -> dict[str, Any]:
    per_clip: dict[str, Any] = {}
    speedups: list[float] = []
    worst_diff = 0
    deterministic = True
    for cname, clip in clips.items():
        if cname in trained:
            state, how = trained[cname]
        else:
            say(f"  decode {cname}: fitting weights")
            state, how = fit_for_decoding(clip, rep, args)
        net = build_network(rep, state, torch.device("cpu"))
        t_n = len(clip.frames)
        sizes_list = [(f"{clip.info.width}x{clip.info.height}", (t_n, clip.info.height, clip.info.width), t_n)]
        sw, sh = clip.source_size
        if (sw, sh) != (clip.info.width, clip.info.height):
            sizes_list.append((f"{sw}x{sh}", (t_n, sh, sw), min(t_n, args.native_frames)))
        entry: dict[str, Any] = {"weights": how, "sizes": {}}
        for label, sizes, n in sizes_list:
            warm = (t_n, 16, 16)  # one-off warm-up (thread pool, BLAS) on a small frame
            render(net, warm, 0, 1)
            render_reference(net, warm, 0, 1)
            t_fast, fast = time_calls(lambda: render(net, sizes, 0, n), max(2, args.decode_repeats))
            t_ref, ref = time_calls(lambda: render_reference(net, sizes, 0, n), args.decode_repeats)
            diff = np.abs(fast[0].astype(np.int16) - ref[0].astype(np.int16))
            same = all(np.array_equal(fast[0], f) for f in fast[1:])
            row = {
                "frames": n, "native": label != f"{clip.info.width}x{clip.info.height}",
                "render_fps": n / t_fast, "reference_fps": n / t_ref, "speedup": t_ref / t_fast,
                "render_seconds": t_fast, "reference_seconds": t_ref,
                "max_abs_diff": int(diff.max()), "differing_fraction": float((diff > 0).mean()),
                "deterministic": same, "render_sha256": hashlib.sha256(fast[0].tobytes()).hexdigest()[:16],
            }
            say(f"    {label}: render {row['render_fps']:.2f} fps, reference {row['reference_fps']:.2f} fps, "
                f"x{row['speedup']:.2f}, max diff {row['max_abs_diff']}")
            entry["sizes"][label] = row
            speedups.append(row["speedup"])
            worst_diff = max(worst_diff, row["max_abs_diff"])
            deterministic = deterministic and same
        per_clip[cname] = entry
    geo = math.exp(sum(map(math.log, speedups)) / len(speedups)) if speedups else None
    return {
        "clips": per_clip, "geomean_speedup": geo, "min_speedup": min(speedups, default=None),
        "max_abs_diff": worst_diff, "deterministic": deterministic,
        "goal": {"speedup": TARGET_SPEEDUP, "max_abs_diff": 1,
                 "met": bool(speedups) and min(speedups) >= TARGET_SPEEDUP and worst_diff <= 1},
    }
