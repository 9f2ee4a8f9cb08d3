#!/usr/bin/env python3
"""Native size (issue 25): encode time per pixel against 128x128, and decode speed and memory at 360p to 1080p.

    python tools/bench_native.py --out docs/bench_native_cpu.json                 # CPU: about 20 minutes
    python tools/bench_native.py --device cuda --out docs/bench_native_h100.json  # the GPU line

**Encode.** ``invr-enc --benchmark`` on the same frames of one clip (``--clip``, first ``--frames`` frames) at a
128x128 crop and at ``--encode-size`` (default 1280x720, the clip scaled), both with ``--preset`` and
``--qp``: seconds per million pixels of the whole command and of each phase, and their ratio (issue 25:
at most 1.3 at 720p). The 720p encode is tiled as the encoder tiles it by default (60 tiles of 128x120).

**Decode.** For each of 640x360, 1280x720 and 1920x1080: a real file of ``--decode-frames`` frames encoded
with ``--steps 1`` (the weights' values do not change the arithmetic of decoding; the file has every tile
of the default grid, coded by DeepCABAC), then ``invr-dec -f rawvideo`` of it into /dev/null: frames per
second of the whole command, and its peak resident memory (the child's maxrss) against one frame's bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.benchcommand import run_enc
from evalkit.report import command_line, machine, say

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DECODE_SIZES = ((640, 360), (1280, 720), (1920, 1080))


def tool(name: str) -> str:
    here = BIN / name
    return str(here) if here.exists() else name


def encode(src: str, out: Path, size: tuple[int, int], args: argparse.Namespace, extra: list[str]) -> dict:
    options = ["-an", "--frames", str(args.frames), "--preset", args.preset, "--qp", str(args.qp), "--device",
               args.device, *extra]
    run = run_enc(Path(src), out, options, dict(os.environ))  # invr-enc --benchmark: wall seconds and phases
    pixels = size[0] * size[1] * args.frames
    return {"size": list(size), "options": " ".join(options), "seconds": round(run["seconds"], 2),
            "seconds_per_mpixel": round(run["seconds"] / pixels * 1e6, 4), "bytes": run["bytes"],
            "phases": run["phases"]}


def decode(path: Path, size: tuple[int, int], frames: int, device: str) -> dict:
    """invr-dec of ``path`` into /dev/null in a child process: its frames per second and peak memory."""
    cmd = [tool("invr-dec"), "-y", "--no-progress", "--device", device, "-f", "rawvideo", "--pix-fmt", "rgb24",
           str(path), "/dev/null"]
    t0 = time.perf_counter()
    # A fresh parent whose only child is the decoder: its RUSAGE_CHILDREN maxrss is the decoder's peak (KiB).
    run = subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    peak = int(run.stdout.split()[-1])
    return {"size": list(size), "frames": frames, "seconds": round(seconds, 2), "fps": round(frames / seconds, 2),
            "maxrss_mib": round(peak / 1024, 1), "frame_mib": round(size[0] * size[1] * 3 / 2**20, 2)}


_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default=str(ROOT.parent / "shared" / "media" / "bigbuckbunny.mp4"))
    ap.add_argument("--frames", type=int, default=15, help="frames of each encode (default 15)")
    ap.add_argument("--preset", default="ultrafast")
    ap.add_argument("--qp", type=int, default=38)
    ap.add_argument("--encode-size", default="1280x720")
    ap.add_argument("--decode-frames", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-encode", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    report: dict = {"tool": "bench_native", "command": command_line(), "machine": machine(),
                    "date": time.strftime("%Y-%m-%d %H:%M")}
    with tempfile.TemporaryDirectory(prefix="invr-native-") as tmp:
        work = Path(tmp)
        if not args.skip_encode:
            w, h = (int(n) for n in args.encode_size.split("x"))
            say(f"encode 128x128 crop, {args.frames} frames")
            small = encode(args.clip, work / "small.invr", (128, 128), args, ["--crop-square", "--scale", "128x128"])
            say(f"  {small['seconds']} s; encode {w}x{h}")
            large = encode(args.clip, work / "large.invr", (w, h), args, ["--scale", f"{w}x{h}"])
            say(f"  {large['seconds']} s")
            report["encode"] = {"small": small, "large": large,
                                "ratio_per_pixel": round(large["seconds_per_mpixel"] / small["seconds_per_mpixel"], 3)}
        report["decode"] = []
        for w, h in DECODE_SIZES:
            path = work / f"d{h}.invr"
            say(f"decode {w}x{h}: making a {args.decode_frames}-frame file")
            subprocess.run([tool("invr-enc"), "-y", "-q", "-an", "--no-progress", "--steps", "1", "--frames",
                            str(args.decode_frames), "--preset", args.preset, "--qp", str(args.qp), "--scale",
                            f"{w}x{h}", "--device", args.device, args.clip, str(path)], check=True)
            row = decode(path, (w, h), args.decode_frames, args.device)
            say(f"  {row['fps']} frames/s, maxrss {row['maxrss_mib']} MiB")
            report["decode"].append(row)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
