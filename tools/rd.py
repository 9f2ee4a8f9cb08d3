"""Rate-distortion evaluation of invrcodec against MPEG-1, MPEG-2, H.264 and H.265 (INVR paper, Table 1, Fig. 2b-c).

For every clip: INVR-C (DeepCABAC) curves at several QPs, INVR-U (raw float32 weights) for the first curve,
and the baselines through PyAV at bitrates spanning INVR-C's, H.264/H.265 also at constant qualities down to
crf 2 (``--crfs``) so that their curves reach INVR's highest rates and 45-55 dB. INVR codes RGB, so H.264 and
H.265 run in 4:4:4 (``h264-444``: x264 High 4:4:4 Predictive; ``h265-444``: x265 Main 4:4:4) as the headline
for RGB PSNR, with the usual 4:2:0 beside them (MPEG-1 and MPEG-2 have no 4:4:4). Every point is a real file:
``.invr`` for INVR, a raw elementary stream (``.m1v``, ``.m2v``, ``.264``, ``.265``: the packets plus the
stream's own headers, no container) for the baselines, whose decoded pixel format is checked against the one
asked for. Each file is decoded back to RGB and scored per frame with :func:`invrcodec.net.fit.rgb_psnr`.

INVR curves come by name (``--invr default,v1``: see ``NAMED_CURVES``) and from a grid of model sizes
(``--hidden``, ``--chunk-frames``, ``--keyint``). A curve whose chunks are all key chunks trains each chunk
once and codes it at every QP (:func:`evalkit.invr.encode_invr_points`, the same bytes as the encoder); a
curve with P-chunks is encoded end to end with :class:`invrcodec.codec.encoder.Encoder` at each QP, as a
P-chunk trains from the previous chunk's decoded weights. The BD table has every INVR-C curve against every
later one (the first named curve is the test, e.g. ``default`` against ``v1``) and against every baseline.
Against each baseline, the whole range as well: BD-rate over a fixed PSNR range (``--fixed-range``, 30-42 dB),
dB behind the baseline at equal rate at each INVR-C point and its mean over ``--behind-bpp`` (0.1-0.5 bpp),
and the top PSNR of each curve.

Writes to ``--out``: ``results.json`` (everything, per-frame PSNR included), ``results.csv`` (one row per
point), ``range.csv`` (the whole-range figures per INVR-C curve and baseline), ``behind.csv`` (dB behind per
INVR-C point and baseline), ``table.md`` (Table 1 layout, BD-rates, the whole range, all points) and PNG
plots (R-D curves, per-frame PSNR, PSNR density).

    python tools/rd.py ../shared/media/carphone_pristine.mp4 --size 128 --frames 90 --invr default,v1 \
        --qp 30,34,38,42,46 --out out/rd128
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import av
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalkit.baselines import (BASELINES, CRF_SWEEP, DEFAULT_BASELINES, baseline_sweep, baseline_targets,
                                encode_baseline, roundtrip_psnr)
from evalkit.clips import Clip, load_clip, parse_size
from evalkit.invr import decode_invr_psnr, encode_invr_points, encode_with_encoder, resolved_config
from evalkit.rdpoints import BEHIND_BPP, FIXED_PSNR_DB, Point, point_from_row
from evalkit.rdreport import write_outputs
from evalkit.report import command_line, report_head, run_tool

from invrcodec.codec.encoder import DEFAULT_QP, EncoderConfig
from invrcodec.codec.presets import DEFAULT_CHUNK_FRAMES, DEFAULT_PRESET, PRESETS

V1_STEPS = "v1"  # the steps the preset had before 2.0: what the preset's rule gives a 15-frame chunk today
C45_STEPS = "c45"  # what the preset's rule gives a 45-frame chunk (its steps before 90-frame networks)

# INVR curves by name: from_preset(--preset, qp=each --qp, **these), so that "default" follows the package's
# defaults (hidden width, chunk length, keyint, band-limited encoding) whatever they become.
NAMED_CURVES: dict[str, tuple[dict[str, object], str]] = {
    "default": ({}, "the package's defaults for the preset"),
    "v1": ({"enc_dims": (64, 64, 32), "keyint": 1, "chunk_frames": 15, "steps": V1_STEPS},
           ("the default of format 1.0: the paper's encoding [64, 64, 32] and 15-frame chunks, every chunk a key "
            "chunk, the steps the preset's rule gives a 15-frame chunk")),
    "c45": ({"chunk_frames": 45, "steps": C45_STEPS},
            ("the default before 90-frame networks: 45-frame chunks with the steps the preset's rule gives 45 "
             "frames")),
    "intra": ({"keyint": 1}, "the defaults with every chunk a key chunk (no inter-chunk prediction)"),
    "h128": ({"hidden": 128}, ("the defaults at hidden 128 for every QP (the default before the width followed "
                               "the QP, presets.BANDS_BY_QP)")),
    "c90": ({"chunk_frames": 90}, ("the default before the chunk length followed the QP (issue 24): one 90-frame "
                                   "network at every QP, the width still by the QP")),
}


# -- INVR ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """One INVR curve: its name and the from_preset arguments besides the preset, QP and coder."""

    name: str  # "INVR-C default", "INVR-C h64 c15 k8", ...
    kwargs: dict[str, object]

    @property
    def slug(self) -> str:
        return self.name.removeprefix("INVR-C ").replace(" ", "_")


def curve_config(args: argparse.Namespace, kwargs: dict[str, object], qp: int | None = None,
                 coder: str = "deepcabac") -> EncoderConfig:
    kwargs = dict(kwargs)
    steps = kwargs.pop("steps", None)
    if steps in (V1_STEPS, C45_STEPS):
        frames = 15 if steps == V1_STEPS else 45
        preset = PRESETS[args.preset]
        steps = args.steps or (preset.steps if args.preset == "paper"
                               else preset.for_frames(frames, DEFAULT_CHUNK_FRAMES).steps)
    return EncoderConfig.from_preset(args.preset, qp=qp, coder=coder, steps=steps or args.steps, lr=args.lr,
                                     device=args.device, seed=args.seed, **kwargs)  # type: ignore[arg-type]


def invr_curves(args: argparse.Namespace) -> list[Curve]:
    """The named curves (``--invr``), then the grid of ``--hidden`` x ``--chunk-frames`` (with ``--keyint``)."""
    out = [Curve(f"INVR-C {name}", NAMED_CURVES[name][0]) for name in args.invr]
    if args.hidden or args.chunk_frames or args.keyint is not None:
        for hidden in args.hidden or [None]:
            for chunk in args.chunk_frames or [None]:
                kwargs: dict[str, object] = {"hidden": hidden, "chunk_frames": chunk, "keyint": args.keyint}
                cfg = curve_config(args, kwargs)
                rep = cfg.representation
                out.append(Curve(f"INVR-C h{rep.hidden} c{rep.chunk_frames} k{cfg.keyint}", kwargs))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"two INVR curves with the same name among {', '.join(names)}")
    return out


def run_invr(clip: Clip, args: argparse.Namespace, outdir: Path) -> tuple[list[Point], dict[str, str]]:
    """Every INVR curve's points; and each curve's settings as the encoder ran them (the file's metadata)."""
    points: list[Point] = []
    settings: dict[str, str] = {}
    for m, curve in enumerate(invr_curves(args)):
        # (label, config, file, codec, curve, setting)
        todo: list[tuple[str, EncoderConfig, Path, str, str, str]] = []
        for qp in args.qp:
            cfg = curve_config(args, curve.kwargs, qp)
            todo.append((f"{curve.name} qp{qp}", cfg, outdir / f"invr-c_{curve.slug}_qp{qp}.invr", "INVR-C",
                         curve.name, f"qp={qp}"))
            if m == 0 and args.compare_refine and cfg.recipe.refine > 0:
                plain = replace(cfg, recipe=replace(cfg.recipe, refine=0.0))
                todo.append((f"{curve.name} no-refine qp{qp}", plain,
                             outdir / f"invr-c_{curve.slug}_qp{qp}_norefine.invr", "INVR-C",
                             f"{curve.name} no-refine", f"qp={qp}"))
        if m == 0 and not args.no_invr_u:
            cfg = curve_config(args, curve.kwargs, coder="raw32")
            name_u = curve.name.replace("INVR-C", "INVR-U", 1)
            todo.append((name_u, cfg, outdir / f"invr-u_{curve.slug}.invr", "INVR-U", name_u, "raw32"))
        resolved_all = [resolved_config(t[1], clip.info) for t in todo]  # the width may follow the QP
        resolved, reps = resolved_all[0], [r.representation for r in resolved_all]
        rep = resolved.representation
        widths = "/".join(dict.fromkeys(str(r.hidden) for r in reps))
        shared = not args.retrain
        settings[curve.name] = " ".join(t if not t.startswith("hidden=") else f"hidden={widths}"
                                        for t in resolved.settings().split() if not t.startswith("qp="))
        print(f"{clip.name}: {curve.name}: h={widths} chunk={rep.chunk_frames} enc_dims={rep.enc_dims} "
              f"keyint={resolved.keyint} ({rep.parameter_count} parameters per chunk), preset {args.preset}, "
              f"{resolved.recipe.steps} steps; " + ("key chunks trained once for all points" if shared else
                                                    "one encode per point"), flush=True)
        if shared:
            results, _, _ = encode_invr_points(clip.frames, clip.info, [t[:3] for t in todo],
                                                  log=lambda s: print(s, flush=True))
            seconds = [r.train_seconds + r.code_seconds for r in results]
        else:
            seconds = [encode_with_encoder(clip.frames, clip.info, cfg, path) for _, cfg, path, *_ in todo]
        for (label, _, path, codec, curve_name, setting), secs, point_rep in zip(todo, seconds, reps):
            psnrs, decode_s = decode_invr_psnr(path, clip.frames)
            point = Point(codec, curve_name, setting, str(path), path.stat().st_size, ".invr file",
                          len(clip.frames), clip.seconds, clip.info.width, clip.info.height, psnrs, secs,
                          decode_s, point_rep.parameter_count)
            print(f"  {label}: {point.bytes} B, {point.kbps:.1f} kbit/s, {point.psnr_mean:.2f} "
                  f"± {point.psnr_std:.2f} dB, {secs:.1f} s", flush=True)
            points.append(point)
    return points, settings


# -- main ------------------------------------------------------------------------------------------------
def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _range(text: str) -> tuple[float, float]:
    """``LO,HI`` with LO < HI."""
    values = _floats(text)
    if len(values) != 2 or values[0] >= values[1]:
        raise argparse.ArgumentTypeError(f"expected LO,HI with LO < HI, got {text!r}")
    return values[0], values[1]


def _range_default(r: tuple[float, float]) -> str:
    return f"{r[0]:g},{r[1]:g}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("clips", nargs="*", help="video files")
    ap.add_argument("--replot", default=None, metavar="RESULTS_JSON",
                    help="only recompute BD-rates, tables and plots from an earlier results.json (or its "
                    "folder)")
    ap.add_argument("--size", default="128", help="N: centre square crop, area-scaled to NxN; or 'native'")
    ap.add_argument("--frames", type=int, default=90,
                    help="frames per clip (90 at 15 frames a chunk: six chunks, so prediction across chunks counts)")
    ap.add_argument("--seek", type=int, default=0, help="skip this many frames first")
    ap.add_argument("--preset", default=DEFAULT_PRESET, help="invrcodec preset (ultrafast, fast, ..., paper)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per chunk (default: the preset's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    ap.add_argument("--qp", type=_ints, default=[30, DEFAULT_QP, 46], help="INVR-C QPs, comma-separated")
    ap.add_argument("--invr", default="default,v1",
                    help="named INVR-C curves, comma-separated, from " + "; ".join(
                        f"{k}: {v[1]}" for k, v in NAMED_CURVES.items()) + "; empty for none")
    ap.add_argument("--hidden", type=_ints, default=None,
                    help="grid curves: hidden widths (model sizes), comma-separated (default: the preset's)")
    ap.add_argument("--chunk-frames", type=_ints, default=None,
                    help="grid curves: chunk lengths, comma-separated (default: the preset's)")
    ap.add_argument("--keyint", type=int, default=None,
                    help="grid curves: a key chunk every N chunks (1: all key chunks; default: the package's)")
    ap.add_argument("--no-invr-u", action="store_true", help="skip INVR-U (raw32)")
    ap.add_argument("--compare-refine", action="store_true",
                    help="also code the first curve without quantisation-aware refinement")
    ap.add_argument("--baselines", default=DEFAULT_BASELINES,
                    help=f"comma-separated, from {','.join(BASELINES)}; empty for none")
    ap.add_argument("--bitrates", type=_floats, default=None,
                    help="baseline target kbit/s, comma-separated (default: derived from INVR-C's rates)")
    ap.add_argument("--baseline-points", type=int, default=6, help="log-spaced baseline targets (auto mode)")
    ap.add_argument("--low-factor", type=float, default=16.0,
                    help="auto mode reaches down to INVR-C's lowest rate divided by this")
    ap.add_argument("--crfs", type=_ints, default=list(CRF_SWEEP),
                    help="H.264/H.265 constant-quality (CRF) points besides the bitrates, comma-separated; "
                    "empty for none")
    ap.add_argument("--fixed-range", type=_range, default=_range_default(FIXED_PSNR_DB), metavar="LO,HI",
                    help="PSNR range (dB) of the fixed-range BD-rate against the baselines")
    ap.add_argument("--behind-bpp", type=_range, default=_range_default(BEHIND_BPP), metavar="LO,HI",
                    help="INVR-C points (bpp) over which 'dB behind at equal rate' is averaged")
    ap.add_argument("--ref-qp", type=int, default=DEFAULT_QP, help="INVR-C QP shown in the Table 1 layout")
    ap.add_argument("--retrain", action="store_true",
                    help="encode every point with invrcodec.Encoder from scratch, also where the chunks are all "
                    "key chunks (same bytes, slower)")
    ap.add_argument("--device", default="cpu", help="auto, cpu or cuda[:N]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's); 1 is far faster on a CPU shared with other jobs")
    ap.add_argument("--tag", default=None, help="suffix of the plot names (default: the size)")
    ap.add_argument("--dpi", type=int, default=90)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: out/rd; with --replot: "
                    "the folder of RESULTS_JSON)")
    args = ap.parse_args(argv)
    args.out_given = args.out is not None
    if args.out is None:
        args.out = Path("out/rd")
    if not args.clips and not args.replot:
        ap.error("give at least one clip (or --replot RESULTS_JSON)")
    args.baselines = [b for b in args.baselines.split(",") if b]
    for b in args.baselines:
        if b not in BASELINES:
            ap.error(f"unknown baseline {b!r} (choose from {', '.join(BASELINES)})")
    args.invr = [c for c in args.invr.split(",") if c]
    for c in args.invr:
        if c not in NAMED_CURVES:
            ap.error(f"unknown INVR curve {c!r} (choose from {', '.join(NAMED_CURVES)})")
    if not args.replot and not (args.invr or args.hidden or args.chunk_frames or args.keyint is not None):
        ap.error("no INVR curve: give --invr NAMES or --hidden/--chunk-frames/--keyint")
    if not args.qp:
        ap.error("give at least one --qp")
    return args


def replot(args: argparse.Namespace) -> int:
    """Recompute BD-rates, tables and plots from an earlier results.json (no encoding)."""
    source = Path(args.replot)
    if source.is_dir():
        source = source / "results.json"
    report = json.loads(source.read_text())
    measured = []
    for c in report.pop("clips"):
        meta = {k: v for k, v in c.items() if k not in ("points", "bd", "table1", "whole_range", "top_psnr")}
        seconds = float(c["frames"]) / float(c["fps"])
        measured.append((meta, [point_from_row(r, seconds) for r in c["points"]]))
    settings = report["settings"]
    report["replotted_with"] = command_line()
    out = args.out if args.out_given else source.parent
    tag = args.tag or ("native" if settings["size"] == "native" else str(settings["size"]))
    written = write_outputs(out, report, measured, settings.get("ref_qp", DEFAULT_QP), tag, args.dpi,
                            args.fixed_range, args.behind_bpp)
    print("wrote " + ", ".join(str(w) for w in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        return replot(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    tag = args.tag or ("native" if size is None else str(size))
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    measured: list[tuple[dict[str, object], list[Point]]] = []
    for path in args.clips:
        clip = load_clip(path, size, args.frames, args.seek)
        outdir = args.out / clip.name
        outdir.mkdir(parents=True, exist_ok=True)
        print(f"{clip.name}: {len(clip.frames)} frames {clip.info.width}x{clip.info.height} "
              f"(source {clip.source_size[0]}x{clip.source_size[1]}), {clip.fps:.3f} fps", flush=True)
        points, invr_settings = run_invr(clip, args, outdir)
        invr_kbps = [p.kbps for p in points if p.codec == "INVR-C"]
        kbps_targets = baseline_targets(invr_kbps, args.bitrates, args.baseline_points, args.low_factor)
        for key in args.baselines:
            base = BASELINES[key]
            for target in baseline_sweep(base, kbps_targets, args.crfs):
                path_b = outdir / f"{key}_{target.stem}.{base.ext}"
                try:
                    p = encode_baseline(clip, base, target, path_b)
                except (av.FFmpegError, RuntimeError) as exc:
                    print(f"  {base.label} at {target.setting} failed: {exc}", file=sys.stderr)
                    continue
                print(f"  {base.label} {target.setting}: {p.bytes} B, {p.kbps:.1f} kbit/s, "
                      f"{p.psnr_mean:.2f} ± {p.psnr_std:.2f} dB", flush=True)
                points.append(p)
        meta: dict[str, object] = {
            "name": clip.name, "path": clip.path, "width": clip.info.width, "height": clip.info.height,
            "source_width": clip.source_size[0], "source_height": clip.source_size[1],
            "frames": len(clip.frames), "fps": clip.fps, "seek": args.seek, "raw_bytes": clip.raw_bytes,
            "invr_curves": invr_settings,
            "roundtrip_psnr": {fmt_: round(roundtrip_psnr(clip.frames, fmt_), 4)
                               for fmt_ in sorted({BASELINES[k].pix_fmt for k in args.baselines})},
        }
        measured.append((meta, points))
    report: dict[str, object] = {
        **report_head("rd", args),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    written = write_outputs(args.out, report, measured, args.ref_qp, tag, args.dpi, args.fixed_range,
                            args.behind_bpp)
    print(f"wrote {', '.join(str(w) for w in written)} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    run_tool("rd", main)
