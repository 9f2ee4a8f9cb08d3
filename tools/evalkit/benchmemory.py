"""Memory (tools/bench.py): the peak resident set of a child process that encodes a synthetic clip, and of
one that decodes it, for a short clip and one ten times longer; memory is bounded by one chunk, not by the
video's length. The child is ``tools/bench.py --child JOB``."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import invrcodec
from evalkit.clips import ROOT, write_y4m
from evalkit.report import say
from invrcodec.types import Representation

def _maxrss_mb() -> float:
    """This process's RSS high-water mark since it started (``ru_maxrss``), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB elsewhere


def _proc_status(key: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of this process from /proc, in MiB (None where there is no /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux: ``clear_refs`` 5), so VmHWM covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_main(job: dict[str, Any]) -> None:
    """Run one encode or decode in this (child) process and print its peak RSS as one JSON line."""
    from invrcodec.codec.encoder import Encoder, EncoderConfig
    from invrcodec.media.pyav import VideoReader

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    # Importing torch peaks above what it keeps resident; measure the work's own peak where Linux allows.
    after_imports = _proc_status("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    if job["mode"] == "encode":
        cfg = EncoderConfig.from_preset(job["preset"], steps=job["steps"], device="cpu", seed=0,
                                        chunk_frames=job["chunk_frames"], hidden=job["hidden"],
                                        layers=job["layers"], enc_dims=tuple(job["enc_dims"]))
        with VideoReader(job["src"], frames=job["frames"]) as reader:
            enc = Encoder(reader.info, cfg)
            with invrcodec.open(job["dst"], "w", header=enc.header) as out:
                for frame in reader:
                    out.mux(enc.encode(frame))
                out.mux(enc.encode(None))
        frames = enc.frames_encoded
    else:
        digest = hashlib.sha256()
        frames = 0
        with invrcodec.open(job["dst"]) as f:
            for frame in f.decode():
                digest.update(frame.tobytes())
                frames += 1
    seconds = time.perf_counter() - t0
    hwm = _proc_status("VmHWM") if reset else None
    print(json.dumps({"peak_rss_mb": hwm if hwm is not None else _maxrss_mb(),
                      "peak_source": "VmHWM after imports" if hwm is not None else "ru_maxrss",
                      "process_peak_rss_mb": _maxrss_mb(), "rss_after_imports_mb": after_imports,
                      "frames": frames, "seconds": seconds}))


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--child", json.dumps(job)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{job['mode']} child failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(rep: Representation, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    short, long = args.memory_frames, 10 * args.memory_frames
    size = args.memory_size
    src = write_y4m(workdir / "memory.y4m", size, size, long)
    runs = []
    for n in (short, long):
        job = {"src": str(src), "dst": str(workdir / f"memory_{n}.invr"), "frames": n, "preset": "ultrafast",
               "steps": args.memory_steps, "chunk_frames": rep.chunk_frames, "hidden": rep.hidden,
               "layers": rep.layers, "enc_dims": list(rep.enc_dims), "threads": args.threads}
        say(f"  memory: encode {n} frames of {size}x{size}")
        enc = run_child({**job, "mode": "encode"})
        say(f"  memory: decode {n} frames")
        dec = run_child({**job, "mode": "decode"})
        if enc["frames"] != n or dec["frames"] != n:
            raise RuntimeError(f"memory run: {n} frames asked, {enc['frames']} encoded, {dec['frames']} decoded")
        runs.append({"frames": n, "chunks": math.ceil(n / rep.chunk_frames),
                     "file_bytes": (workdir / f"memory_{n}.invr").stat().st_size,
                     "encode": enc, "decode": dec})
        say(f"    peak RSS encode {enc['peak_rss_mb']:.0f} MB, decode {dec['peak_rss_mb']:.0f} MB")

    def ratios(kind: str) -> dict[str, float]:
        a, b = runs[0][kind], runs[1][kind]
        out = {"peak": b["peak_rss_mb"] / a["peak_rss_mb"],
               "process_peak": b["process_peak_rss_mb"] / a["process_peak_rss_mb"], "above_imports": None}
        if a["rss_after_imports_mb"] is not None and b["rss_after_imports_mb"] is not None:
            above_a = a["peak_rss_mb"] - a["rss_after_imports_mb"]
            above_b = b["peak_rss_mb"] - b["rss_after_imports_mb"]
            out["above_imports"] = above_b / above_a if above_a > 0 else None
        return out

    return {"clip": f"synthetic {size}x{size} y4m", "preset": "ultrafast", "steps": args.memory_steps,
            "chunk_frames": rep.chunk_frames, "runs": runs,
            "ratio_long_to_short": {"encode": ratios("encode"), "decode": ratios("decode")}}
