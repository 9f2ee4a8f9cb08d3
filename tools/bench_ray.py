"""Chunks per second against Ray workers on one machine, and Ray's overhead against in-process (issue 12).

    python tools/bench_ray.py --out docs/bench_ray.json            # 1 and 2 CPUs: minutes on 2 cores
    python tools/bench_ray.py --cpus 1,2,4,8 --chunks 32 ...        # a bigger machine

One synthetic clip (moving colour gradients, ``--size`` square, ``--chunks`` chunks of ``--chunk-frames``) is
encoded with the same settings (``ultrafast`` with a ``--hidden`` x ``--layers`` network, ``--steps``, one
torch thread per chunk, a key chunk every
``--keyint`` chunks) by the in-process executor, then through a local Ray cluster of N CPUs for each N of
``--cpus`` (one task slot per CPU). For each cluster: its start-up time, a first encode (its workers import
torch and invrcodec) and a second one on the warm cluster, which is the number reported. Every encode's bytes
are checked against the in-process encode's (the executors promise the same bytes on one CPU).

The in-process encode also runs twice, the second reported. The overhead of Ray is the 1-CPU cluster's warm
time over the in-process one: object store, task dispatch
and a worker process per task slot, for the same sequential work. Wall times depend on the machine's load;
the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.codec.executors import Executor, InProcessExecutor, RayExecutor
from invrcodec.types import StreamInfo

SCHEMA = "invrcodec-bench-ray/1"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def clip(size: int, frames: int) -> np.ndarray:
    """Moving colour gradients, (T, H, W, 3) uint8."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        r = 128 + 90 * np.sin(2 * np.pi * x / size + 0.3 * t)
        g = 128 + 90 * np.cos(2 * np.pi * y / size - 0.2 * t)
        b = 128 + 60 * np.sin(2 * np.pi * (x + y) / (2 * size) + 0.1 * t)
        out[t] = np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)
    return out


def encode(frames: np.ndarray, cfg: EncoderConfig, executor: Executor) -> tuple[float, str, int]:
    """Seconds from the first frame to the last packet, a digest of the packets, and their count."""
    stream = StreamInfo(width=frames.shape[2], height=frames.shape[1], frame_count=len(frames))
    start = time.perf_counter()
    enc = Encoder(stream, cfg, executor=executor)
    packets = []
    for f in frames:
        packets += enc.encode(f)
    packets += enc.encode(None)
    seconds = time.perf_counter() - start
    h = hashlib.sha256()
    for p in packets:
        for t in p.tensors:
            h.update(t.data)
    return seconds, h.hexdigest(), len(packets)


def run_ray(frames: np.ndarray, cfg: EncoderConfig, cpus: int, want: str) -> dict[str, Any]:
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=40, log_to_driver=False)
    startup = time.perf_counter() - start
    runs = []
    for _ in range(2):
        seconds, digest, n = encode(frames, cfg, RayExecutor("local", threads=1))
        if digest != want:
            raise SystemExit(f"bench_ray: error: Ray with {cpus} CPUs gave other bytes than in-process")
        runs.append(seconds)
        say(f"  ray {cpus} CPU: {seconds:.1f} s ({n / seconds:.3f} chunks/s)")
    ray.shutdown()
    return {"cpus": cpus, "startup_s": round(startup, 2), "first_s": round(runs[0], 2),
            "warm_s": round(runs[1], 2), "chunks_per_s": round(n / runs[1], 4), "same_bytes": True}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpus", default="1,2", help="Ray cluster sizes to time (comma-separated)")
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--chunk-frames", type=int, default=4)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--keyint", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    frames = clip(args.size, args.chunks * args.chunk_frames)
    cfg = EncoderConfig.from_preset("ultrafast", steps=args.steps, chunk_frames=args.chunk_frames,
                                    keyint=args.keyint, hidden=args.hidden, layers=args.layers, device="cpu")
    load_before = os.getloadavg()
    say(f"in-process: {args.chunks} chunks of {args.chunk_frames} frames at {args.size}x{args.size}")
    times = []
    for _ in range(2):  # the first encode of a process pays one-time costs, as a Ray cluster's first does
        seconds, digest, n = encode(frames, cfg, InProcessExecutor())
        times.append(seconds)
        say(f"  in-process: {seconds:.1f} s ({n / seconds:.3f} chunks/s)")
    inproc = {"first_s": round(times[0], 2), "seconds": round(seconds, 2), "chunks_per_s": round(n / seconds, 4)}
    rays = [run_ray(frames, cfg, int(c), digest) for c in args.cpus.split(",")]
    one = next((r for r in rays if r["cpus"] == 1), None)
    result = {
        "schema": SCHEMA, "date": date.today().isoformat(), "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "ray": __import__("ray").__version__,
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "settings": {"preset": "ultrafast", "steps": args.steps, "hidden": args.hidden, "layers": args.layers,
                     "chunks": args.chunks,
                     "chunk_frames": args.chunk_frames, "size": args.size, "keyint": args.keyint,
                     "torch_threads_per_chunk": 1},
        "in_process": inproc, "ray": rays,
        "ray_overhead_1cpu": round(one["warm_s"] / seconds, 3) if one else None,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
