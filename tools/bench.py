"""Speed benchmark (issue #6): time to a target PSNR, decoding speed and peak memory, in one run, as JSON.

    python tools/bench.py --out docs/bench.json        # full run: about 20 minutes on two quiet cores
    python tools/bench.py --quick --out /tmp/b.json    # smoke run on a synthetic clip, well under a minute

Everything is measured in one process on one machine (memory in child processes), with the machine's facts
and its load average before and after, so numbers from a busy machine are recognisable as such.

**Time to target.** A 15-frame 128x128 chunk of each clip (centre square crop, area scale, first frames) is
trained with the paper's recipe (sec. 3.1.2: one whole random frame per step, Adam at 2e-5, textbook forward
pass) on the paper's network and with each preset on the network invr-enc gives such a clip (encoding
band-limited, a 90-frame representation, so the preset's steps are scaled to 15 frames), up to the highest
target (default 35 dB); the time at which every lower target
(30 dB) is first met is read from the same run. PSNR is the full-chunk check that ``fit_chunk`` itself makes
(every ``--eval-every`` steps, and whenever its running estimate meets the target); the bench observes those
checks by timing ``invrcodec.net.fit.render_chunks``, and reports

* ``seconds`` (the headline): training time to the target, i.e. wall time minus the time spent in those
  checks (how often the bench checks is a measuring choice, 25 steps for the presets and 100 for the paper,
  and must not decide the ratio), without the one-off torch.compile of presets with ``compile=True`` (it is
  paid once per process and shape, amortised over a whole video; it is measured separately by a warm-up fit
  on an empty inductor cache and reported as ``compile_seconds`` and ``seconds_incl_compile``);
* ``wall_seconds``: the same including the checks.

A recipe that stops (its own step count, or the ``--max-seconds``/``--paper-max-seconds`` cap) before a target
reports ``reached: false`` and its time so far, a lower bound; ratios built from bounds say so (``bound``:
``exact``, ``at least``, ``at most``, or null when nothing can be said). Presets keep their own step counts,
since their learning-rate schedules are defined over them.

**Decoding.** ``render`` (per-axis tables) against ``render_reference`` (per-pixel encoding and full MLP) on the
same trained weights, at the chunk's 128x128 and at the clip's native size; frames per second (best of
``--decode-repeats``), the largest difference in code values and whether ``render`` repeats bit for bit.

**The whole command** (what a user times; issue #15). The same chunk is written losslessly (FFV1, bgr0)
and encoded by ``invr-enc --psnr T --benchmark`` (T: the lowest target) in a child process, timed from its
start to its exit, twice: first on an empty inductor cache (a machine's first encode), then again (every
later encode, the headline). The file is decoded and its PSNR against the chunk reported (the command meets
the target when the decoded PSNR is within 0.5 dB of it); ``phases`` is the command's own breakdown
(start-up, read, compile, train, check, refine, code, render, write), and the ratio is the paper's training
time to T from the fits above over the whole command's wall time. ``--long-frames N`` (150) also encodes the
clip's first N frames with the default preset (every chunk a key chunk) and with P-chunks (``--keyint 0``)
and reports frames per second of the whole command.

**Memory.** Peak resident set (``ru_maxrss``) of a child process that encodes a synthetic clip file through
``VideoReader -> Encoder -> invrcodec.open`` at ultrafast, and of one that decodes the file, for a short clip
and one ten times longer; the ratio long/short of the peaks (and of the peaks above the child's RSS after its
imports) should be about 1: memory is bounded by one chunk, not by the video's length.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit import report
from evalkit.benchcommand import bench_command
from evalkit.benchdecode import bench_decode
from evalkit.benchfit import bench_fit, summarise_fit
from evalkit.benchmemory import bench_memory, child_main
from evalkit.clips import Clip, load_clip, write_y4m
from evalkit.invr import compile_at_once
from evalkit.report import command_line, fmt, say

from invrcodec.codec.presets import DEFAULT_CHUNK_FRAMES, PRESETS, band_limited_dims
from invrcodec.hostmem import keep_freed_memory
from invrcodec.net.fit import cpu_has_native_bf16
from invrcodec.types import Representation

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "invrcodec-bench/1"
OUR_PRESETS = ("ultrafast", "fast", "medium", "slow")
QUICK_REP = Representation(hidden=32, layers=2, enc_dims=(8, 8, 4), chunk_frames=4)
QUICK_ENC = ["--preset", "ultrafast", "--hidden", "32", "--layers", "2", "--enc-dims", "8,8,4", "--steps", "60",
             "--chunk-frames", "4"]


# -- the run -------------------------------------------------------------------------------------------------
def machine(threads_set: int) -> dict[str, Any]:
    facts = report.machine()
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "invrcodec",
                                     "tools/bench.py", "tools/evalkit"], capture_output=True, text=True,
                                    check=False).stdout.strip())
    except OSError:
        commit, dirty = None, None
    facts.update({
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "threads_requested": threads_set or None,
        "numpy": np.__version__, "platform": platform.platform(), "mkl": torch.backends.mkl.is_available(),
        "datetime_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "git_dirty": dirty,
    })
    return facts


def clip_paths(args: argparse.Namespace) -> list[Path]:
    if args.quick:
        return [write_y4m(Path(args.workdir) / "synthetic.y4m", 48, 40, max(args.frames, args.long_frames))]
    media = Path(args.media)
    if not media.is_dir():
        raise SystemExit(f"bench: {media} is not a folder of clips (use --media)")
    paths = sorted(p for p in media.iterdir() if p.suffix.lower() in (".mp4", ".mkv", ".y4m", ".webm"))
    if args.clips:
        paths = [p for p in paths if p.stem in args.clips or p.name in args.clips]
    if not paths:
        raise SystemExit(f"bench: no clips in {media}")
    return paths


def load_clips(args: argparse.Namespace, paths: list[Path]) -> dict[str, Clip]:
    clips = {}
    for p in paths:
        clip = load_clip(p, args.size, args.frames)
        if len(clip.frames) < args.frames:
            raise SystemExit(f"bench: {p} has only {len(clip.frames)} frames, {args.frames} needed")
        clips[clip.name] = clip
    return clips


def budget_estimate(args: argparse.Namespace, n_clips: int) -> float:
    """Worst case of the capped parts, in seconds (compile warm-ups, decoding and memory come on top)."""
    fit = n_clips * (args.paper_max_seconds + len(args.presets) * args.max_seconds) if "fit" not in args.skip else 0
    return fit


def _clean(obj: Any) -> Any:
    """JSON without NaN/Infinity: non-finite floats become null; floats rounded to 4 significant digits."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.4g}") if math.isfinite(obj) else None
    return obj


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench.json"), help="JSON output (default docs/bench.json)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: synthetic 48x40 clip of 4 frames, small network, two presets without "
                         "compile, few steps, low targets; checks the machinery, measures nothing")
    ap.add_argument("--media", default=str(ROOT.parent / "shared" / "media"), help="folder of clips")
    ap.add_argument("--clips", type=lambda s: s.split(","), default=None, help="comma list of clip names")
    ap.add_argument("--frames", type=int, default=None, help="chunk length (default 15)")
    ap.add_argument("--size", type=int, default=None, help="square training size (default 128)")
    ap.add_argument("--targets", type=lambda s: [float(x) for x in s.split(",")], default=None,
                    help="PSNR targets in dB (default 30,35)")
    ap.add_argument("--presets", type=lambda s: s.split(","), default=None,
                    help=f"presets to time against the paper (default {','.join(OUR_PRESETS)})")
    ap.add_argument("--eval-every", type=int, default=25, help="PSNR check interval of the presets (25)")
    ap.add_argument("--paper-eval-every", type=int, default=100, help="PSNR check interval of the paper (100)")
    ap.add_argument("--max-seconds", type=float, default=150.0, help="cap per preset fit (150 s)")
    ap.add_argument("--paper-max-seconds", type=float, default=300.0, help="cap per paper fit (300 s)")
    ap.add_argument("--paper-max-steps", type=int, default=PRESETS["paper"].steps,
                    help=f"step cap of the paper's recipe (default its own {PRESETS['paper'].steps})")
    ap.add_argument("--max-steps", type=int, default=0,
                    help="cap every recipe's steps (changes cosine schedules: smoke runs only)")
    ap.add_argument("--no-compile", action="store_true", help="run compile presets eagerly")
    ap.add_argument("--native-frames", type=int, default=3, help="frames decoded at the native size (3)")
    ap.add_argument("--decode-repeats", type=int, default=2, help="timing repeats, best taken (2)")
    ap.add_argument("--memory-size", type=int, default=None, help="memory clip side (default 64)")
    ap.add_argument("--memory-frames", type=int, default=None, help="short memory clip (default 15; long 10x)")
    ap.add_argument("--memory-steps", type=int, default=None, help="training steps per chunk (default 20)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--long-frames", type=int, default=None,
                    help="frames of the long whole-command encodes (default 150; 0 = none)")
    ap.add_argument("--skip", type=lambda s: s.split(","), default=[],
                    help="comma list of fit,command,decode,memory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    quick = args.quick
    defaults = {
        "frames": (4, 15), "size": (32, 128), "targets": ([18.0, 22.0], [30.0, 35.0]),
        "presets": (["ultrafast", "fast"], list(OUR_PRESETS)),
        "memory_size": (16, 64), "memory_frames": (4, 15), "memory_steps": (2, 20), "long_frames": (8, 150),
    }
    for key, (q, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, q if quick else full)
    # --quick encodes with a small network: it checks the machinery, not the speed
    args.enc_options = QUICK_ENC if quick else []
    if quick:
        args.no_compile = True
        args.max_steps = args.max_steps or 30
        args.eval_every = min(args.eval_every, 10)
        args.paper_eval_every = min(args.paper_eval_every, 10)
        args.max_seconds = min(args.max_seconds, 20.0)
        args.paper_max_seconds = min(args.paper_max_seconds, 20.0)
        args.decode_repeats = min(args.decode_repeats, 2)
    unknown = [p for p in args.presets if p not in OUR_PRESETS]
    if unknown:
        ap.error(f"unknown preset(s) {', '.join(unknown)} (choose from {', '.join(OUR_PRESETS)})")
    if set(args.skip) - {"fit", "command", "decode", "memory"}:
        ap.error("--skip takes fit, command, decode, memory")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as invr-enc does: the paper's fits and the presets' in this process, the same way
    # The paper's network on the paper's chunks; the presets' as invr-enc builds it for a clip of this size
    # (the encoding band-limited to a DEFAULT_CHUNK_FRAMES chunk, the steps then scaled to the clip's frames).
    rep = QUICK_REP if args.quick else replace(Representation(), chunk_frames=args.frames)
    preset_rep = QUICK_REP if args.quick else replace(
        Representation(), chunk_frames=DEFAULT_CHUNK_FRAMES,
        enc_dims=band_limited_dims(args.size, args.size, DEFAULT_CHUNK_FRAMES, Representation().sigma))
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    result: dict[str, Any] = {"schema": SCHEMA, "quick": args.quick, "command": command_line(),
                              "machine": machine(args.threads)}
    with tempfile.TemporaryDirectory(prefix="invr-bench-") as tmp:
        workdir = Path(tmp)
        args.workdir = tmp
        paths = clip_paths(args)
        clips = load_clips(args, paths)
        say(f"bench: {len(clips)} clip(s) {', '.join(clips)}, {torch.get_num_threads()} thread(s), load average "
            f"{load_before[0]:.2f} on {os.cpu_count()} CPUs; capped fits take at most "
            f"{budget_estimate(args, len(clips)) / 60:.0f} min")
        if load_before[0] > 0.5 * (os.cpu_count() or 1):
            say("bench: the machine is busy; these timings are contended")
        result["settings"] = {
            "representation": {**asdict(rep), "parameters": rep.parameter_count},
            "preset_representation": {**asdict(preset_rep), "parameters": preset_rep.parameter_count},
            "native_bf16": cpu_has_native_bf16(),
            "clips": {n: {"path": c.path, "source_size": list(c.source_size),
                          "chunk": [len(c.frames), c.info.height, c.info.width]} for n, c in clips.items()},
            **{k: v for k, v in vars(args).items() if k not in ("child", "out", "workdir", "enc_options")},
        }
        trained: dict[str, tuple[dict[str, np.ndarray], str]] = {}
        if "fit" not in args.skip:
            say("time to target")
            with compile_at_once():
                fit, trained = bench_fit(clips, rep, preset_rep, args, workdir / "inductor")
            summarise_fit(fit, args.presets, args.targets)
            result["fit"] = fit
        if "command" not in args.skip:
            say("the whole command")
            result["command"] = bench_command(clips, paths, args, workdir, result.get("fit"))
        if "decode" not in args.skip:
            say("decoding")
            result["decode"] = bench_decode(clips, rep, args, trained)
        if "memory" not in args.skip:
            say("memory")
            result["memory"] = bench_memory(rep, args, workdir)
    load_after = os.getloadavg()
    result["machine"]["load_average_before"] = list(load_before)
    result["machine"]["load_average_after"] = list(load_after)
    result["machine"]["contended"] = max(load_before[0], load_after[0]) > 0.5 * (os.cpu_count() or 1) + 0.5
    result["total_seconds"] = time.perf_counter() - t_start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(result), indent=1) + "\n")
    print_summary(result)
    say(f"bench: wrote {out} in {result['total_seconds'] / 60:.1f} min")
    return 0


def print_summary(result: dict[str, Any]) -> None:
    fit = result.get("fit")
    if fit:
        for tgt, by_preset in fit["geomean_ratio"].items():
            parts = [f"{n} {'>=' if g['bound'] == 'at least' else '<=' if g['bound'] == 'at most' else ''}"
                     f"{fmt(g['value'], 1)}x" for n, g in by_preset.items()]
            print(f"time to {tgt} dB, paper/preset (geomean): " + ", ".join(parts))
        for cname, clip in fit["clips"].items():
            for name, res in clip["recipes"].items():
                cells = []
                for tgt, t in res["targets"].items():
                    mark = "" if t["reached"] else ">"
                    cells.append(f"{tgt} dB {mark}{fmt(t['seconds'], 1)} s")
                print(f"  {cname:>20} {name:>9}: {', '.join(cells)}  ({res['stopped']}, {res['steps']} steps)")
    cmd = result.get("command")
    if cmd:
        g = cmd.get("geomean_ratio")
        if g:
            bf16 = "native" if result["settings"]["native_bf16"] else "not native (float32)"
            print(f"whole invr-enc --psnr {cmd['target_db']:g}, paper training / command (geomean): "
                  f"{'>=' if g['bound'] == 'at least' else ''}{fmt(g['value'], 1)}x; bfloat16 {bf16}")
        for cname, row in cmd["clips"].items():
            for run in ("cold", "warm"):
                r = row[run]
                print(f"  {cname:>20} {run}: {fmt(r['seconds'], 1)} s, decoded {fmt(r['decoded_psnr'])} dB")
        for cname, row in cmd.get("long", {}).items():
            for label, r in row.items():
                print(f"  {cname:>20} {r['frames']} frames, {label}: {fmt(r['fps'])} fps")
    dec = result.get("decode")
    if dec:
        for cname, clip in dec["clips"].items():
            for label, row in clip["sizes"].items():
                print(f"decode {cname} {label}: render {fmt(row['render_fps'])} fps, reference "
                      f"{fmt(row['reference_fps'])} fps, x{fmt(row['speedup'])}, max diff {row['max_abs_diff']}")
    mem = result.get("memory")
    if mem:
        r = mem["ratio_long_to_short"]
        print(f"peak RSS long/short: encode {fmt(r['encode']['peak'])}, decode {fmt(r['decode']['peak'])}")


if __name__ == "__main__":
    sys.exit(main())
