"""Rate-distortion evaluation of invrcodec against MPEG-1, MPEG-2, H.264 and H.265 (INVR paper, Table 1, Fig. 2b-c).

For every clip: INVR-C (DeepCABAC) at several QPs, optionally at several model sizes (hidden width, chunk
length), INVR-U (raw float32 weights) at the first model size, and the baselines through PyAV at bitrates
spanning INVR-C's. Every point is a real file: ``.invr`` for INVR, a raw elementary stream (``.m1v``, ``.m2v``,
``.264``, ``.265``: the packets plus the stream's own headers, no container) for the baselines. Each file is
decoded back to RGB and scored per frame with :func:`invrcodec.fit.rgb_psnr`.

Writes to ``--out``: ``results.json`` (everything, per-frame PSNR included), ``results.csv`` (one row per
point), ``table.md`` (Table 1 layout, BD-rates, all points) and PNG plots (R-D curves, per-frame PSNR,
PSNR density).

    python tools/rd.py ../shared/media/carphone_pristine.mp4 --size 128 --frames 45 --out out/rd128
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _evalcommon as ec

from invrcodec.encoder import DEFAULT_QP, EncoderConfig
from invrcodec.errors import InvrError
from invrcodec.fit import rgb_psnr


@dataclass(frozen=True)
class Baseline:
    label: str  # as in the tables
    codec: str  # PyAV / FFmpeg encoder
    fmt: str  # raw elementary-stream muxer
    ext: str
    options: tuple[tuple[str, str], ...] = ()


BASELINES: dict[str, Baseline] = {
    "mpeg1": Baseline("MPEG-1", "mpeg1video", "mpeg1video", "m1v"),
    "mpeg2": Baseline("MPEG-2", "mpeg2video", "mpeg2video", "m2v"),
    "h264": Baseline("H.264", "libx264", "h264", "264", (("preset", "medium"),)),
    "h265": Baseline("H.265", "libx265", "hevc", "265", (("preset", "medium"), ("x265-params", "log-level=error"))),
}


@dataclass
class Point:
    """One operating point of one codec on one clip."""

    codec: str  # "INVR-C", "INVR-U", "MPEG-1", ...
    curve: str  # the R-D curve it belongs to, e.g. "INVR-C h128 c15" or "H.264"
    setting: str  # "qp=38", "target=120 kbit/s", ...
    file: str
    bytes: int
    bytes_kind: str
    frames: int
    seconds: float  # clip duration
    width: int
    height: int
    psnr: list[float]
    encode_s: float
    decode_s: float
    params: int | None = None  # network parameters per chunk (INVR)

    @property
    def kbps(self) -> float:
        return self.bytes * 8 / 1000 / self.seconds

    @property
    def bpp(self) -> float:
        return self.bytes * 8 / (self.frames * self.width * self.height)

    @property
    def psnr_mean(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def psnr_std(self) -> float:
        return float(np.std(self.psnr))

    def row(self) -> dict[str, object]:
        return {
            "codec": self.codec, "curve": self.curve, "setting": self.setting, "bytes": self.bytes,
            "bytes_kind": self.bytes_kind, "kbps": round(self.kbps, 3), "bpp": round(self.bpp, 5),
            "psnr_mean": round(self.psnr_mean, 4), "psnr_std": round(self.psnr_std, 4),
            "psnr_min": round(min(self.psnr), 4), "frames": self.frames, "width": self.width,
            "height": self.height, "encode_s": round(self.encode_s, 2), "decode_s": round(self.decode_s, 2),
            "params": self.params, "file": self.file,
        }


# -- baselines -------------------------------------------------------------------------------------------
def encode_baseline(clip: ec.Clip, base: Baseline, kbps: float, path: Path) -> Point:
    """Encode the clip's RGB frames (converted to yuv420p) at a target bitrate, decode, score."""
    frames, info = clip.frames, clip.info
    t0 = time.perf_counter()
    with av.open(str(path), "w", format=base.fmt) as container:
        stream = container.add_stream(base.codec, rate=Fraction(info.frame_rate), options=dict(base.options))
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        stream.bit_rate = int(kbps * 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    psnrs: list[float] = []
    with av.open(str(path), format=base.fmt) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i < len(frames):
                psnrs.append(rgb_psnr(frame.to_ndarray(format="rgb24"), frames[i]))
    decode_s = time.perf_counter() - t0
    if len(psnrs) != len(frames):
        raise RuntimeError(f"{path}: decoded {len(psnrs)} frames, expected {len(frames)}")
    return Point(base.label, base.label, f"target={kbps:.1f} kbit/s", str(path), path.stat().st_size,
                 "raw elementary stream file", len(frames), clip.seconds, info.width, info.height, psnrs,
                 encode_s, decode_s)


def baseline_targets(invr_kbps: list[float], explicit: list[float] | None, count: int,
                     low_factor: float) -> list[float]:
    """Target bitrates: explicit ones, or ``count`` log-spaced from INVR-C's lowest / low_factor to its
    highest (baselines reach INVR-C's quality at far lower rates, so the span reaches down) plus every
    INVR-C rate itself (matched-bitrate points for Table 1)."""
    if explicit:
        return sorted(explicit)
    lo, hi = min(invr_kbps) / low_factor, max(invr_kbps)
    grid = list(np.geomspace(lo, hi, count)) if count > 1 else [hi]
    return sorted({round(v, 1) for v in grid + list(invr_kbps)})


# -- INVR ------------------------------------------------------------------------------------------------
def run_invr(clip: ec.Clip, args: argparse.Namespace, outdir: Path) -> list[Point]:
    points: list[Point] = []
    for m, (hidden, chunk) in enumerate((h, c) for h in args.hidden for c in args.chunk_frames):
        common = dict(steps=args.steps, hidden=hidden, chunk_frames=chunk, device=args.device, seed=args.seed,
                      lr=args.lr)
        curve = f"INVR-C h{hidden} c{chunk}"
        todo: list[tuple[str, EncoderConfig, Path]] = []
        curve_of: dict[str, str] = {}
        for qp in args.qp:
            cfg = EncoderConfig.from_preset(args.preset, qp=qp, **common)  # type: ignore[arg-type]
            todo.append((f"{curve} qp{qp}", cfg, outdir / f"invr-c_h{hidden}_c{chunk}_qp{qp}.invr"))
            curve_of[todo[-1][0]] = curve
            if m == 0 and args.compare_refine and cfg.recipe.refine > 0:
                plain = replace(cfg, recipe=replace(cfg.recipe, refine=0.0))
                todo.append((f"{curve} no-refine qp{qp}", plain,
                             outdir / f"invr-c_h{hidden}_c{chunk}_qp{qp}_norefine.invr"))
                curve_of[todo[-1][0]] = f"{curve} no-refine"
        if m == 0 and not args.no_invr_u:
            cfg = EncoderConfig.from_preset(args.preset, coder="raw32", **common)  # type: ignore[arg-type]
            todo.append((f"INVR-U h{hidden} c{chunk}", cfg, outdir / f"invr-u_h{hidden}_c{chunk}.invr"))
        params = todo[0][1].representation.parameter_count
        print(f"{clip.name}: INVR h={hidden} chunk={chunk} ({params} parameters per chunk), "
              f"preset {args.preset}, {todo[0][1].recipe.steps} steps", flush=True)
        if args.retrain:
            coded = []
            for label, cfg, path in todo:
                seconds = ec.encode_with_encoder(clip.frames, clip.info, cfg, path)
                coded.append((label, cfg, path, seconds))
        else:
            results, train_s, _ = ec.encode_invr_points(clip.frames, clip.info, todo,
                                                        log=lambda s: print(s, flush=True))
            coded = [(p.label, p.config, p.path, train_s + p.code_seconds) for p in results]
        for label, cfg, path, seconds in coded:
            psnrs, decode_s = ec.decode_invr_psnr(path, clip.frames)
            raw = cfg.coder.name != "DEEPCABAC"
            point = Point("INVR-U" if raw else "INVR-C", f"INVR-U h{hidden} c{chunk}" if raw else curve_of[label],
                          "raw32" if raw else f"qp={cfg.qp}", str(path), path.stat().st_size, ".invr file",
                          len(clip.frames), clip.seconds, clip.info.width, clip.info.height, psnrs, seconds,
                          decode_s, params)
            print(f"  {label}: {point.bytes} B, {point.kbps:.1f} kbit/s, {point.psnr_mean:.2f} "
                  f"± {point.psnr_std:.2f} dB", flush=True)
            points.append(point)
    return points


# -- analysis --------------------------------------------------------------------------------------------
def curves(points: list[Point]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for p in points:
        out.setdefault(p.curve, []).append(p)
    for pts in out.values():
        pts.sort(key=lambda p: p.bytes)
    return out


def bd_table(points: list[Point]) -> list[dict[str, object]]:
    """BD-rate and BD-PSNR of every INVR-C curve against every baseline (the baseline is the anchor)."""
    cs = curves(points)
    rows = []
    for name, test in cs.items():
        if not name.startswith("INVR-C"):
            continue
        for anchor_name, anchor in cs.items():
            if anchor_name.startswith("INVR"):
                continue
            ar, ap = [p.kbps for p in anchor], [p.psnr_mean for p in anchor]
            tr, tp = [p.kbps for p in test], [p.psnr_mean for p in test]
            rows.append({
                "test": name, "anchor": anchor_name,
                "bd_rate_pchip": ec.bd_rate(ar, ap, tr, tp, "pchip"),
                "bd_rate_cubic": ec.bd_rate(ar, ap, tr, tp, "cubic"),
                "bd_psnr_pchip": ec.bd_psnr(ar, ap, tr, tp, "pchip"),
                "psnr_overlap_db": ec.overlap(ec.pareto(ar, ap)[1], ec.pareto(tr, tp)[1]),
                "rate_overlap_kbps": ec.overlap(ec.pareto(ar, ap)[0], ec.pareto(tr, tp)[0]),
            })
    return rows


def table1_points(points: list[Point], main_curve: str, qp: int) -> dict[str, Point]:
    """Table 1's rows: INVR-C at the reference QP, INVR-U, and each baseline's point nearest in size."""
    cs = curves(points)
    chosen: dict[str, Point] = {}
    invr_c = [p for p in cs.get(main_curve, []) if p.setting == f"qp={qp}"] or cs.get(main_curve, [])[:1]
    if invr_c:
        chosen["INVR-C"] = invr_c[0]
    for name, pts in cs.items():
        if name.startswith("INVR-U") and "INVR-U" not in chosen:
            chosen["INVR-U"] = pts[0]
    if invr_c:
        target = invr_c[0].bytes
        for name, pts in cs.items():
            if not name.startswith("INVR"):
                chosen[name] = min(pts, key=lambda p: abs(math.log(p.bytes / target)))
    return chosen


def markdown(report: dict[str, object], clips: list[dict[str, object]]) -> str:
    lines = [f"Measured {report['machine']['date']} on {report['machine']['cpu']}, "  # type: ignore[index]
             f"{report['machine']['cpu_count']} cores, {report['machine']['torch_threads']} torch thread(s); command: `{report['command']}`", ""]
    names = [c["name"] for c in clips]
    order = ["INVR-C", "INVR-U", "MPEG-1", "MPEG-2", "H.264", "H.265"]
    lines += ["Table 1 layout: INVR-C at the reference QP, INVR-U, and each baseline at its point closest in "
              "size to INVR-C. PSNR is RGB, mean ± std over frames; sizes in KB (1000 bytes).", ""]
    head = "| | | " + " | ".join(f"{n} PSNR (dB)" for n in names) + " | | " + \
        " | ".join(f"{n} size (KB)" for n in names) + " |"
    lines += [head, "|" + "---|" * (3 + 2 * len(names))]
    for i, codec in enumerate(order):
        cells_p, cells_s = [], []
        for c in clips:
            p = c["table1"].get(codec)  # type: ignore[union-attr]
            cells_p.append(f"{p['psnr_mean']:.2f} ± {p['psnr_std']:.2f}" if p else "–")
            cells_s.append(f"{p['bytes'] / 1000:.1f}" if p else "–")
        lines.append(f"| {'PSNR' if i == 0 else ''} | {codec} | " + " | ".join(cells_p) +
                     f" | {'File size' if i == 0 else ''} | " + " | ".join(cells_s) + " |")
    lines.append("| | | " + " | ".join("" for _ in names) + " | | " +
                 " | ".join(f"{c['raw_bytes'] / 1000:.1f} (raw RGB)" for c in clips) + " |")
    lines += ["", "BD-rate of INVR-C against each baseline (anchor), Bjontegaard on mean RGB PSNR vs kbit/s "
              "(positive: INVR-C needs that much more rate for the same PSNR), averaged over the PSNR range where "
              "both curves exist; BD-PSNR: mean PSNR difference at equal rate (negative: INVR-C worse) over the "
              "common rate range. n/a: the ranges do not overlap. Curves are reduced to their Pareto points "
              "(rate control can return the same or a worse point for a higher target).", "",
              "| clip | INVR-C curve | anchor | BD-rate pchip | BD-rate cubic | over PSNR (dB) | BD-PSNR pchip "
              "| over rate (kbit/s) |", "|---|---|---|---|---|---|---|---|"]

    def span(r: object, digits: int) -> str:
        return "none" if r is None else f"{r[0]:.{digits}f}–{r[1]:.{digits}f}"  # type: ignore[index]

    for c in clips:
        for r in c["bd"]:  # type: ignore[union-attr]
            lines.append(f"| {c['name']} | {r['test']} | {r['anchor']} | {ec.fmt(r['bd_rate_pchip'], 1, ' %')} "
                         f"| {ec.fmt(r['bd_rate_cubic'], 1, ' %')} | {span(r['psnr_overlap_db'], 2)} "
                         f"| {ec.fmt(r['bd_psnr_pchip'], 2, ' dB')} | {span(r['rate_overlap_kbps'], 0)} |")
    lines += ["", "All points (bytes: .invr file size for INVR, raw elementary-stream file size for the "
              "baselines; encode time for INVR is the shared training time plus this point's coding; "
              "wall times on a shared machine).", "",
              "| clip | codec | curve | setting | bytes | kbit/s | bpp | PSNR (dB) | min | encode s | decode s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in clips:
        for r in c["points"]:  # type: ignore[union-attr]
            lines.append(f"| {c['name']} | {r['codec']} | {r['curve']} | {r['setting']} | {r['bytes']} "
                         f"| {r['kbps']:.1f} | {r['bpp']:.4f} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} "
                         f"| {r['psnr_min']:.2f} | {r['encode_s']:.1f} | {r['decode_s']:.1f} |")
    return "\n".join(lines) + "\n"


# -- plots -----------------------------------------------------------------------------------------------
STYLE = {"INVR-C": ("tab:red", "o"), "INVR-U": ("darkred", "*"), "MPEG-1": ("tab:gray", "s"),
         "MPEG-2": ("tab:brown", "D"), "H.264": ("tab:blue", "^"), "H.265": ("tab:green", "v")}


def plots(outdir: Path, clip_results: list[tuple[dict[str, object], list[Point], dict[str, Point]]], tag: str,
          dpi: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    n = len(clip_results)

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)
    for ax, (clip, pts, _) in zip(axes[0], clip_results):
        for i, (name, cpts) in enumerate(curves(pts).items()):
            color, marker = STYLE.get(cpts[0].codec, ("black", "x"))
            if name.startswith("INVR-C") and i > 0 and cpts[0].codec == "INVR-C":
                color = plt.cm.autumn(0.2 + 0.15 * i)  # type: ignore[attr-defined]
            ax.plot([p.kbps for p in cpts], [p.psnr_mean for p in cpts], marker=marker, color=color,
                    label=name, ms=5, lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("kbit/s")
        ax.set_ylabel("RGB PSNR (dB)")
        ax.set_title(f"{clip['name']} {clip['width']}x{clip['height']}, {clip['frames']} frames", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    path = outdir / f"rd_{tag}.png"
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    written.append(str(path))

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.2), squeeze=False)
    for ax, (clip, _, chosen) in zip(axes[0], clip_results):
        for codec, p in chosen.items():
            color, _ = STYLE.get(codec, ("black", "x"))
            ax.plot(range(len(p.psnr)), p.psnr, color=color, lw=1.1,
                    label=f"{codec} ({p.kbps:.0f} kbit/s)")
        ax.set_xlabel("frame")
        ax.set_ylabel("RGB PSNR (dB)")
        ax.set_title(f"{clip['name']}: per-frame PSNR", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    path = outdir / f"perframe_{tag}.png"
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    written.append(str(path))

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.2), squeeze=False)
    for ax, (clip, _, chosen) in zip(axes[0], clip_results):
        allv = [v for p in chosen.values() for v in p.psnr]
        grid = np.linspace(min(allv) - 1, max(allv) + 1, 300)
        for codec, p in chosen.items():
            color, _ = STYLE.get(codec, ("black", "x"))
            ax.plot(grid, ec.gaussian_kde(p.psnr, grid), color=color, lw=1.2, label=codec)
        ax.set_xlabel("RGB PSNR (dB)")
        ax.set_ylabel("density")
        ax.set_title(f"{clip['name']}: PSNR density over frames", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    path = outdir / f"density_{tag}.png"
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    written.append(str(path))
    return written


# -- main ------------------------------------------------------------------------------------------------
def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("clips", nargs="*", help="video files")
    ap.add_argument("--replot", default=None, metavar="RESULTS_JSON",
                    help="only recompute BD-rates, tables and plots from an earlier results.json")
    ap.add_argument("--size", default="128", help="N: centre square crop, area-scaled to NxN; or 'native'")
    ap.add_argument("--frames", type=int, default=45, help="frames per clip")
    ap.add_argument("--seek", type=int, default=0, help="skip this many frames first")
    ap.add_argument("--preset", default="ultrafast", help="invrcodec preset (ultrafast, fast, ..., paper)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per chunk (default: the preset's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    ap.add_argument("--qp", type=_ints, default=[30, DEFAULT_QP, 46], help="INVR-C QPs, comma-separated")
    ap.add_argument("--hidden", type=_ints, default=[128], help="hidden widths (model sizes), comma-separated")
    ap.add_argument("--chunk-frames", type=_ints, default=[15], help="chunk lengths, comma-separated")
    ap.add_argument("--no-invr-u", action="store_true", help="skip INVR-U (raw32)")
    ap.add_argument("--compare-refine", action="store_true",
                    help="also code the first model size without quantisation-aware refinement (same training)")
    ap.add_argument("--baselines", default="mpeg1,mpeg2,h264,h265",
                    help=f"comma-separated, from {','.join(BASELINES)}; empty for none")
    ap.add_argument("--bitrates", type=_floats, default=None,
                    help="baseline target kbit/s, comma-separated (default: derived from INVR-C's rates)")
    ap.add_argument("--baseline-points", type=int, default=6, help="log-spaced baseline targets (auto mode)")
    ap.add_argument("--low-factor", type=float, default=16.0,
                    help="auto mode reaches down to INVR-C's lowest rate divided by this")
    ap.add_argument("--ref-qp", type=int, default=DEFAULT_QP, help="INVR-C QP shown in the Table 1 layout")
    ap.add_argument("--retrain", action="store_true",
                    help="encode every point with invrcodec.Encoder from scratch (same bytes, slower)")
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
    if not args.qp:
        ap.error("give at least one --qp")
    return args


def point_from_row(row: dict[str, object], seconds: float) -> Point:
    return Point(str(row["codec"]), str(row["curve"]), str(row["setting"]), str(row["file"]),
                 int(row["bytes"]), str(row["bytes_kind"]), int(row["frames"]), seconds,  # type: ignore[arg-type]
                 int(row["width"]), int(row["height"]), list(row["psnr_per_frame"]),  # type: ignore[arg-type]
                 float(row["encode_s"]), float(row["decode_s"]), row.get("params"))  # type: ignore[arg-type]


def write_outputs(out: Path, report: dict[str, object], measured: list[tuple[dict[str, object], list[Point]]],
                  main_curve: str, ref_qp: int, tag: str, dpi: int) -> list[Path]:
    """BD-rates, Table 1 choice, JSON, CSV, markdown and plots from measured points."""
    clip_results = []
    clips_json = []
    for meta, points in measured:
        chosen = table1_points(points, main_curve, ref_qp)
        clip_results.append((meta, points, chosen))
        clips_json.append({
            **meta,
            # Per-frame PSNR at full precision: --replot recomputes every mean and BD figure from these.
            "points": [dict(p.row(), psnr_per_frame=[float(v) for v in p.psnr]) for p in points],
            "bd": bd_table(points),
            "table1": {k: p.row() for k, p in chosen.items()},
        })
    report = {**report, "clips": clips_json}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        header_written = False
        for meta, points, _ in clip_results:
            for p in points:
                row = p.row()
                if not header_written:
                    writer.writerow(["clip", *row])
                    header_written = True
                writer.writerow([meta["name"], *row.values()])
    (out / "table.md").write_text(markdown(report, clips_json))
    written = [out / "results.json", out / "results.csv", out / "table.md"]
    if any(points for _, points, _ in clip_results):
        written += [Path(w) for w in plots(out, clip_results, tag, dpi)]
    return written


def replot(args: argparse.Namespace) -> int:
    """Recompute BD-rates, tables and plots from an earlier results.json (no encoding)."""
    report = json.loads(Path(args.replot).read_text())
    measured = []
    for c in report.pop("clips"):
        meta = {k: v for k, v in c.items() if k not in ("points", "bd", "table1")}
        seconds = float(c["frames"]) / float(c["fps"])
        measured.append((meta, [point_from_row(r, seconds) for r in c["points"]]))
    settings = report["settings"]
    report["replotted_with"] = ec.command_line()
    out = args.out if args.out_given else Path(args.replot).parent
    tag = args.tag or ("native" if settings["size"] == "native" else str(settings["size"]))
    main_curve = f"INVR-C h{settings['hidden'][0]} c{settings['chunk_frames'][0]}"
    written = write_outputs(out, report, measured, main_curve, settings.get("ref_qp", DEFAULT_QP), tag, args.dpi)
    print("wrote " + ", ".join(str(w) for w in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        return replot(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = ec.parse_size(args.size)
    tag = args.tag or ("native" if size is None else str(size))
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    measured: list[tuple[dict[str, object], list[Point]]] = []
    for path in args.clips:
        clip = ec.load_clip(path, size, args.frames, args.seek)
        outdir = args.out / clip.name
        outdir.mkdir(parents=True, exist_ok=True)
        print(f"{clip.name}: {len(clip.frames)} frames {clip.info.width}x{clip.info.height} "
              f"(source {clip.source_size[0]}x{clip.source_size[1]}), {clip.fps:.3f} fps", flush=True)
        points = run_invr(clip, args, outdir)
        invr_kbps = [p.kbps for p in points if p.codec == "INVR-C"]
        for key in args.baselines:
            base = BASELINES[key]
            for kbps in baseline_targets(invr_kbps, args.bitrates, args.baseline_points, args.low_factor):
                path_b = outdir / f"{key}_{kbps:08.1f}k.{base.ext}"
                try:
                    p = encode_baseline(clip, base, kbps, path_b)
                except (av.FFmpegError, RuntimeError) as exc:
                    print(f"  {base.label} at {kbps:.1f} kbit/s failed: {exc}", file=sys.stderr)
                    continue
                print(f"  {base.label} target {kbps:.1f}: {p.bytes} B, {p.kbps:.1f} kbit/s, "
                      f"{p.psnr_mean:.2f} ± {p.psnr_std:.2f} dB", flush=True)
                points.append(p)
        meta: dict[str, object] = {
            "name": clip.name, "path": clip.path, "width": clip.info.width, "height": clip.info.height,
            "source_width": clip.source_size[0], "source_height": clip.source_size[1],
            "frames": len(clip.frames), "fps": clip.fps, "seek": args.seek, "raw_bytes": clip.raw_bytes,
        }
        measured.append((meta, points))
    report: dict[str, object] = {
        "tool": "rd", "command": ec.command_line(), "machine": ec.machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    written = write_outputs(args.out, report, measured, f"INVR-C h{args.hidden[0]} c{args.chunk_frames[0]}",
                            args.ref_qp, tag, args.dpi)
    print(f"wrote {', '.join(str(w) for w in written)} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (InvrError, ValueError) as exc:
        print(f"rd: error: {exc}", file=sys.stderr)
        sys.exit(1)
