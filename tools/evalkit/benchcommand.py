"""The whole command (tools/bench.py): ``invr-enc --psnr T --benchmark`` on each clip's chunk as a child
process, on an empty inductor cache and again, its phases, the decoded PSNR and the ratio to the paper's
training; and frames per second of the default command on longer clips, with and without P-chunks."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.benchfit import TARGET_RATIO, geomean, ratio, target_met
from evalkit.clips import Clip, load_clip, write_lossless
from evalkit.invr import decode_invr_psnr
from evalkit.report import say
from invrcodec.metrics import pooled_psnr

BENCH_LINE = re.compile(r"bench: (.*?); total")
STEPS_LINE = re.compile(r"chunk \d+ \((?:key|P)\): frames \d+-\d+(?:, \d+ tiles)?, (\d+) steps")


def run_enc(src: Path, dst: Path, options: Sequence[str], env: dict[str, str]) -> dict[str, Any]:
    """``invr-enc OPTIONS --benchmark SRC DST`` as a child process: wall seconds, its phases and steps."""
    cmd = [sys.executable, "-m", "invrcodec.cli.enc", "-y", "--no-progress", "--benchmark", *options,
           str(src), str(dst)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise SystemExit(f"bench: invr-enc failed on {src.name}: {tail[0]}")
    phases: dict[str, float] = {}
    if (m := BENCH_LINE.search(proc.stderr)) is not None:
        for part in m.group(1).split(", "):
            name, value, _unit = part.rsplit(" ", 2)
            phases[name] = float(value)
    steps = [int(n) for n in STEPS_LINE.findall(proc.stderr)]
    return {"seconds": wall, "phases": phases, "steps": steps, "bytes": dst.stat().st_size}


def decoded_psnr(path: Path, reference: np.ndarray) -> float:
    """The PSNR of a file's decoded frames against ``reference``, of their pooled squared error."""
    return pooled_psnr(decode_invr_psnr(path, reference)[0])


def bench_command(clips: dict[str, Clip], paths: list[Path], args: argparse.Namespace, workdir: Path,
                  fit: dict[str, Any] | None) -> dict[str, Any]:
    """The whole ``invr-enc --psnr T`` on each clip's chunk, cold and warm; ratios to the paper's training."""
    target = min(args.targets)
    threads = [*args.enc_options, *(["--threads", str(args.threads)] if args.threads else [])]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(workdir / "inductor-command")}
    out: dict[str, Any] = {"target_db": target, "clips": {}}
    ratios = []
    for cname, clip in clips.items():
        src = write_lossless(clip.frames, clip.info.frame_rate, workdir / f"{cname}-chunk.mkv")
        row: dict[str, Any] = {}
        for run in ("cold", "warm"):
            res = run_enc(src, workdir / f"{cname}.invr", ["--psnr", f"{target:g}", *threads], env)
            res["decoded_psnr"] = decoded_psnr(workdir / f"{cname}.invr", clip.frames)
            res["reached"] = res["decoded_psnr"] >= target - 0.5
            row[run] = res
            say(f"  invr-enc --psnr {target:g} on {cname} ({run} cache): {res['seconds']:.1f} s, "
                f"{res['steps']} steps, decoded {res['decoded_psnr']:.2f} dB; "
                + ", ".join(f"{k} {v:.2f}" for k, v in res["phases"].items()))
        if fit is not None:
            paper = fit["clips"][cname]["recipes"]["paper"]["targets"][f"{target:g}"]
            row["ratio"] = ratio(paper, row["warm"])
            row["ratio_cold"] = ratio(paper, row["cold"])
            ratios.append(row["ratio"])
        out["clips"][cname] = row
    if fit is not None:
        out["geomean_ratio"] = geomean(ratios)
        g = out["geomean_ratio"]
        out["goal"] = {"ratio": TARGET_RATIO, "met": target_met(g, TARGET_RATIO) if g["bound"] else None}
    if args.long_frames:
        out["long"] = bench_long(paths, args, workdir, threads, env)
    return out


def bench_long(paths: list[Path], args: argparse.Namespace, workdir: Path, threads: list[str],
               env: dict[str, str]) -> dict[str, Any]:
    """Frames per second of the whole default command on each clip's first ``--long-frames`` frames, with
    every chunk a key chunk (the default) and with P-chunks after the first (``--keyint 0``)."""
    rows: dict[str, Any] = {}
    for path in paths:
        clip = load_clip(path, args.size, args.long_frames)
        src = write_lossless(clip.frames, clip.info.frame_rate, workdir / f"{clip.name}-long.mkv")
        rows[clip.name] = {}
        for label, options in (("keyint 1", []), ("keyint 0", ["--keyint", "0"])):
            dst = workdir / f"{clip.name}-long.invr"
            res = run_enc(src, dst, [*options, *threads], env)
            res["frames"] = len(clip.frames)
            res["fps"] = len(clip.frames) / res["seconds"]
            res["decoded_psnr"] = decoded_psnr(dst, clip.frames)
            rows[clip.name][label] = res
            say(f"  {len(clip.frames)} frames of {clip.name}, {label}: {res['seconds']:.1f} s, "
                f"{res['fps']:.2f} fps, {res['bytes']} bytes, decoded {res['decoded_psnr']:.2f} dB")
    return rows
