"""Chunks trained at once (issue #6, item 3): throughput against chunks per batch, and a whole clip at once.

    python tools/bench_parallel.py --out docs/bench_parallel_cpu.json             # CPU: a few minutes
    python tools/bench_parallel.py --device cuda --full --out docs/bench_parallel_h100.json   # GPU

**Scaling.** For each batch size B (``--batches``), B chunks of the clip are trained together by
:func:`invrcodec.net.fit.fit_chunks` for ``--scaling-steps`` steps of each recipe (``--recipes``); reported are
chunk-steps per second and the speed-up over B = 1 (the same chunks trained one after another gives B = 1's
rate). The first batch of each size is a warm-up (compile, CUDA kernels) and is not timed.

**Full.** With ``--full``: every chunk of a ``--clip-frames``-frame clip (default 500, the paper's setting:
128x128, 15-frame chunks) is trained at once with the paper's recipe for ``--steps`` steps (default its
25,000), timed from the first step to the last chunk's weights on the host; then every chunk is decoded on
the same device through :func:`invrcodec.codec.decoder.render` (frames per second, and mean / min PSNR against the
source). The clip is the shared clips' frames, cropped and scaled to 128x128, played forwards then backwards
until it is long enough (their 120 and 132 frames are fewer than 500). 500 frames are 33 chunks of 15 and one
of 5, all trained at once (the short one as its own batch, stepped alongside), as the encoder trains them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.clips import load_clip
from evalkit.report import command_line, machine, say

from invrcodec.codec.decoder import build_network, render
from invrcodec.net.devices import resolve_device
from invrcodec.net.fit import FitResult, Recipe, fit_chunks
from invrcodec.metrics import mean_of_psnrs, rgb_psnr
from invrcodec.codec.presets import PRESETS
from invrcodec.types import Representation

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "invrcodec-bench-parallel/1"


def long_clip(media: Path, names: Sequence[str], frames: int, size: int) -> np.ndarray:
    """``frames`` frames of the named clips at ``size`` x ``size``, forwards then backwards, repeated."""
    parts = [load_clip(media / name, size, None).frames for name in names]
    loop = np.concatenate([np.concatenate([p, p[::-1]]) for p in parts])
    return np.concatenate([loop] * (frames // len(loop) + 1))[:frames]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batch(chunks: list[np.ndarray], rep: Representation, recipe: Recipe, device: torch.device,
               seed: int) -> tuple[float, list[FitResult]]:
    """Wall seconds and results of training ``chunks`` together."""
    _sync(device)
    t0 = time.perf_counter()
    fits = fit_chunks(chunks, rep, recipe, device=device, seeds=[seed + i for i in range(len(chunks))])
    _sync(device)
    return time.perf_counter() - t0, fits


def bench_scaling(chunks: list[np.ndarray], rep: Representation, args: argparse.Namespace,
                  device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in args.recipes:
        recipe = replace(PRESETS[name], steps=args.scaling_steps, eval_every=args.scaling_steps)
        if args.no_compile:
            recipe = replace(recipe, compile=False)
        rows = []
        for b in args.batches:
            group = [chunks[i % len(chunks)] for i in range(b)]
            torch._dynamo.reset()  # each size compiles afresh: one process never reaches the recompile limit
            time_batch(group, rep, replace(recipe, steps=3, eval_every=3), device, args.seed)  # warm-up
            seconds, fits = time_batch(group, rep, recipe, device, args.seed)
            rate = b * recipe.steps / seconds
            rows.append({"chunks": b, "seconds": seconds, "chunk_steps_per_second": rate,
                         "mean_psnr": mean_of_psnrs([f.psnr for f in fits])})
            say(f"  {name}: {b} chunk(s) at once: {seconds:.1f} s for {recipe.steps} steps, "
                f"{rate:.1f} chunk-steps/s")
        base = rows[0]["chunk_steps_per_second"]
        for row in rows:
            row["speedup_vs_one"] = row["chunk_steps_per_second"] / base
        out[name] = {"steps": recipe.steps, "batch_pixels": recipe.batch, "rows": rows}
    return out


def bench_full(frames: np.ndarray, rep: Representation, args: argparse.Namespace,
               device: torch.device) -> dict[str, Any]:
    """Every chunk at once (a short last one as its own batch stepped alongside, as the encoder trains a
    video's end), then every chunk decoded on the device from its trained float weights (the coder's share of
    decoding is measured by tools/bench.py)."""
    n = rep.chunk_frames
    chunks = [frames[i:i + n] for i in range(0, len(frames), n)]
    recipe = replace(PRESETS["paper"], steps=args.steps)
    say(f"  {len(chunks)} chunks at once (the last of {len(chunks[-1])} frames), paper recipe, "
        f"{recipe.steps} steps")
    seconds, fits = time_batch(chunks, rep, recipe, device, args.seed)
    say(f"  trained in {seconds:.1f} s")
    nets = [build_network(rep, fit.state, device) for fit in fits]
    render(nets[0], chunks[0].shape[:3])  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    decoded = [render(net, chunk.shape[:3]) for net, chunk in zip(nets, chunks)]
    _sync(device)
    decode_seconds = time.perf_counter() - t0
    psnrs = [rgb_psnr(out, chunk) for out, chunk in zip(decoded, chunks)]
    say(f"  decoded {len(frames)} frames in {decode_seconds:.2f} s; PSNR mean {mean_of_psnrs(psnrs):.2f} dB")
    return {
        "frames": len(frames), "chunks": len(chunks), "steps": recipe.steps, "train_seconds": seconds,
        "decoded_psnr_mean": mean_of_psnrs(psnrs), "decoded_psnr_min": float(np.min(psnrs)),
        "decode_seconds": decode_seconds, "decode_fps": len(frames) / decode_seconds,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON output")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    ap.add_argument("--media", default=str(ROOT.parent / "shared" / "media"), help="folder of clips")
    ap.add_argument("--clips", default="bigbuckbunny.mp4,carphone_pristine.mp4",
                    help="comma list of clip files")
    ap.add_argument("--size", type=int, default=128, help="square training size (128)")
    ap.add_argument("--recipes", type=lambda s: s.split(","), default=["fast", "paper"],
                    help="presets timed in the scaling table (fast,paper)")
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=None,
                    help="chunks per batch (CPU default 1,3; CUDA 1,2,4,8,16,34)")
    ap.add_argument("--scaling-steps", type=int, default=None,
                    help="steps per scaling run (CPU 60, CUDA 300)")
    ap.add_argument("--no-compile", action="store_true", help="run compile presets eagerly")
    ap.add_argument("--full", action="store_true", help="also train a whole clip at once (see above)")
    ap.add_argument("--clip-frames", type=int, default=500, help="frames of the --full clip (500)")
    ap.add_argument("--steps", type=int, default=PRESETS["paper"].steps,
                    help=f"steps per chunk of the --full run (default the paper's {PRESETS['paper'].steps})")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.batches = args.batches or ([1, 2, 4, 8, 16, 34] if cuda else [1, 3])
    args.scaling_steps = args.scaling_steps or (300 if cuda else 60)
    rep = Representation()
    media = Path(args.media)
    names = args.clips.split(",")
    length = max(args.clip_frames if args.full else 0, rep.chunk_frames * 3)
    frames = long_clip(media, names, length, args.size)
    chunks = [frames[i:i + rep.chunk_frames] for i in range(0, len(frames) - rep.chunk_frames + 1,
                                                             rep.chunk_frames)]
    facts = machine()
    facts["device"] = str(device)
    result: dict[str, Any] = {"schema": SCHEMA, "command": command_line(), "machine": facts,
                              "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    t0 = time.perf_counter()
    say(f"bench_parallel: {device}, scaling over {args.batches} chunks at once")
    result["scaling"] = bench_scaling(chunks, rep, args, device)
    if args.full:
        say("full clip")
        result["full"] = bench_full(frames[:args.clip_frames], rep, args, device)
    result["total_seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    say(f"bench_parallel: wrote {out} in {result['total_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
