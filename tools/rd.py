"""Rate-distortion evaluation of invrcodec against MPEG-1, MPEG-2, H.264 and H.265 (INVR paper, Table 1, Fig. 2b-c).

For every clip: INVR-C (DeepCABAC) curves at several QPs, INVR-U (raw float32 weights) for the first curve, and
the baselines through PyAV at bitrates spanning INVR-C's. INVR codes RGB, so H.264 and H.265 run in 4:4:4
(``h264-444``: x264 High 4:4:4 Predictive; ``h265-444``: x265 Main 4:4:4) as the headline for RGB PSNR, with
the usual 4:2:0 beside them (MPEG-1 and MPEG-2 have no 4:4:4). Every point is a real file: ``.invr`` for INVR,
a raw elementary stream (``.m1v``, ``.m2v``, ``.264``, ``.265``: the packets plus the stream's own headers, no
container) for the baselines, whose decoded pixel format is checked against the one asked for. Each file is
decoded back to RGB and scored per frame with :func:`invrcodec.net.fit.rgb_psnr`.

INVR curves come by name (``--invr default,v1``: see ``NAMED_CURVES``) and from a grid of model sizes
(``--hidden``, ``--chunk-frames``, ``--keyint``). A curve whose chunks are all key chunks trains each chunk once
and codes it at every QP (:func:`_evalcommon.encode_invr_points`, the same bytes as the encoder); a curve with
P-chunks is encoded end to end with :class:`invrcodec.codec.encoder.Encoder` at each QP, as a P-chunk trains from the
previous chunk's decoded weights. The BD table has every INVR-C curve against every later one (the first named
curve is the test, e.g. ``default`` against ``v1``) and against every baseline.

Writes to ``--out``: ``results.json`` (everything, per-frame PSNR included), ``results.csv`` (one row per
point), ``table.md`` (Table 1 layout, BD-rates, all points) and PNG plots (R-D curves, per-frame PSNR,
PSNR density).

    python tools/rd.py ../shared/media/carphone_pristine.mp4 --size 128 --frames 90 --invr default,v1 \
        --qp 30,34,38,42,46 --out out/rd128
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _evalcommon as ec

from invrcodec.codec.encoder import DEFAULT_QP, EncoderConfig
from invrcodec.metrics import rgb_psnr
from invrcodec.codec.presets import DEFAULT_CHUNK_FRAMES, DEFAULT_PRESET, PRESETS

X264 = (("preset", "medium"),)
X265 = (("preset", "medium"), ("x265-params", "log-level=error"))


@dataclass(frozen=True)
class Baseline:
    label: str  # as in the tables: codec and chroma sampling
    codec: str  # PyAV / FFmpeg encoder
    fmt: str  # raw elementary-stream muxer
    ext: str
    pix_fmt: str = "yuv420p"  # what the RGB frames are converted to, and what the decoder must give back
    options: tuple[tuple[str, str], ...] = ()


BASELINES: dict[str, Baseline] = {
    "mpeg1": Baseline("MPEG-1 4:2:0", "mpeg1video", "mpeg1video", "m1v"),
    "mpeg2": Baseline("MPEG-2 4:2:0", "mpeg2video", "mpeg2video", "m2v"),
    "h264": Baseline("H.264 4:2:0", "libx264", "h264", "264", "yuv420p", X264),
    "h264-444": Baseline("H.264 4:4:4", "libx264", "h264", "264", "yuv444p", X264),  # High 4:4:4 Predictive
    "h265": Baseline("H.265 4:2:0", "libx265", "hevc", "265", "yuv420p", X265),
    "h265-444": Baseline("H.265 4:4:4", "libx265", "hevc", "265", "yuv444p", X265),  # Main 4:4:4 (RExt)
}
DEFAULT_BASELINES = "mpeg1,h264,h264-444,h265,h265-444"

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
                               "the QP, presets.WIDTH_BY_QP)")),
}


@dataclass
class Point:
    """One operating point of one codec on one clip."""

    codec: str  # "INVR-C", "INVR-U", "MPEG-1 4:2:0", "H.264 4:4:4", ...
    curve: str  # the R-D curve it belongs to, e.g. "INVR-C default" or "H.264 4:4:4"
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
    pix_fmt: str | None = None  # baselines: the decoded stream's pixel format
    profile: str | None = None  # baselines: the decoded stream's profile

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
            "params": self.params, "pix_fmt": self.pix_fmt, "profile": self.profile, "file": self.file,
        }


# -- baselines -------------------------------------------------------------------------------------------
def encode_baseline(clip: ec.Clip, base: Baseline, kbps: float, path: Path) -> Point:
    """Encode the clip's RGB frames (converted to ``base.pix_fmt``) at a target bitrate, decode, check the
    decoded pixel format, convert back to RGB and score."""
    frames, info = clip.frames, clip.info
    t0 = time.perf_counter()
    with av.open(str(path), "w", format=base.fmt) as container:
        stream = container.add_stream(base.codec, rate=Fraction(info.frame_rate), options=dict(base.options))
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, base.pix_fmt
        stream.bit_rate = int(kbps * 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=base.pix_fmt)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    psnrs: list[float] = []
    formats: set[str] = set()
    with av.open(str(path), format=base.fmt) as container:
        for i, frame in enumerate(container.decode(video=0)):
            formats.add(frame.format.name)
            if i < len(frames):
                psnrs.append(rgb_psnr(frame.to_ndarray(format="rgb24"), frames[i]))
        profile = container.streams.video[0].codec_context.profile
    decode_s = time.perf_counter() - t0
    if len(psnrs) != len(frames):
        raise RuntimeError(f"{path}: decoded {len(psnrs)} frames, expected {len(frames)}")
    if formats != {base.pix_fmt}:
        raise ValueError(f"{path}: decoded as {', '.join(sorted(formats))}, encoded as {base.pix_fmt}")
    return Point(base.label, base.label, f"target={kbps:.1f} kbit/s", str(path), path.stat().st_size,
                 "raw elementary stream file", len(frames), clip.seconds, info.width, info.height, psnrs,
                 encode_s, decode_s, pix_fmt=base.pix_fmt, profile=profile or None)


def roundtrip_psnr(frames: np.ndarray, pix_fmt: str) -> float:
    """Mean RGB PSNR of RGB -> ``pix_fmt`` -> RGB without coding: the ceiling of a baseline in that format."""
    out = []
    for rgb in frames:
        yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        out.append(rgb_psnr(yuv.to_ndarray(format="rgb24"), rgb))
    return float(np.mean(out))


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


def run_invr(clip: ec.Clip, args: argparse.Namespace, outdir: Path) -> tuple[list[Point], dict[str, str]]:
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
        resolved_all = [ec.resolved_config(t[1], clip.info) for t in todo]  # the width may follow the QP
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
            results, _, _ = ec.encode_invr_points(clip.frames, clip.info, [t[:3] for t in todo],
                                                  log=lambda s: print(s, flush=True))
            seconds = [r.train_seconds + r.code_seconds for r in results]
        else:
            seconds = [ec.encode_with_encoder(clip.frames, clip.info, cfg, path) for _, cfg, path, *_ in todo]
        for (label, _, path, codec, curve_name, setting), secs, point_rep in zip(todo, seconds, reps):
            psnrs, decode_s = ec.decode_invr_psnr(path, clip.frames)
            point = Point(codec, curve_name, setting, str(path), path.stat().st_size, ".invr file",
                          len(clip.frames), clip.seconds, clip.info.width, clip.info.height, psnrs, secs,
                          decode_s, point_rep.parameter_count)
            print(f"  {label}: {point.bytes} B, {point.kbps:.1f} kbit/s, {point.psnr_mean:.2f} "
                  f"± {point.psnr_std:.2f} dB, {secs:.1f} s", flush=True)
            points.append(point)
    return points, settings


# -- analysis --------------------------------------------------------------------------------------------
def curves(points: list[Point]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for p in points:
        out.setdefault(p.curve, []).append(p)
    for pts in out.values():
        pts.sort(key=lambda p: p.bytes)
    return out


def invr_c_curves(cs: dict[str, list[Point]]) -> list[str]:
    return [name for name, pts in cs.items() if pts[0].codec == "INVR-C"]


def baseline_curves(cs: dict[str, list[Point]]) -> list[str]:
    """The baselines' curves, 4:4:4 first (the headline for RGB PSNR), otherwise in the order measured."""
    names = [name for name, pts in cs.items() if not pts[0].codec.startswith("INVR")]
    return sorted(names, key=lambda n: "4:4:4" not in n)


def bd_row(test_name: str, test: list[Point], anchor_name: str, anchor: list[Point], kind: str,
           ) -> dict[str, object]:
    ar, ap = [p.kbps for p in anchor], [p.psnr_mean for p in anchor]
    tr, tp = [p.kbps for p in test], [p.psnr_mean for p in test]
    return {
        "test": test_name, "anchor": anchor_name, "kind": kind,
        "bd_rate_pchip": ec.bd_rate(ar, ap, tr, tp, "pchip"),
        "bd_rate_cubic": ec.bd_rate(ar, ap, tr, tp, "cubic"),
        "bd_psnr_pchip": ec.bd_psnr(ar, ap, tr, tp, "pchip"),
        "psnr_overlap_db": ec.overlap(ec.pareto(ar, ap)[1], ec.pareto(tr, tp)[1]),
        "rate_overlap_kbps": ec.overlap(ec.pareto(ar, ap)[0], ec.pareto(tr, tp)[0]),
    }


def bd_table(points: list[Point]) -> list[dict[str, object]]:
    """BD-rate and BD-PSNR of every INVR-C curve against every later one (kind ``invr``: the earlier curve is
    the test, so ``--invr default,v1`` gives the new default against the old), then of every INVR-C curve
    against every baseline (kind ``baseline``: the baseline is the anchor)."""
    cs = curves(points)
    invr = invr_c_curves(cs)
    rows = [bd_row(test, cs[test], anchor, cs[anchor], "invr")
            for i, test in enumerate(invr) for anchor in invr[i + 1:]]
    rows += [bd_row(test, cs[test], anchor, cs[anchor], "baseline")
             for test in invr for anchor in baseline_curves(cs)]
    return rows


def table1_points(points: list[Point], qp: int) -> dict[str, Point]:
    """Table 1's rows, by curve: each INVR-C curve at the reference QP, INVR-U, and each baseline's point
    nearest in size to the first INVR-C curve's."""
    cs = curves(points)
    chosen: dict[str, Point] = {}
    for name in invr_c_curves(cs):
        chosen[name] = next((p for p in cs[name] if p.setting == f"qp={qp}"), cs[name][0])
    for name, pts in cs.items():
        if pts[0].codec == "INVR-U":
            chosen[name] = pts[0]
    main = next(iter(chosen.values()), None)
    if main is not None:
        for name in baseline_curves(cs):
            chosen[name] = min(cs[name], key=lambda p: abs(math.log(p.bytes / main.bytes)))
    return chosen


def _span(r: object, digits: int) -> str:
    return "none" if r is None else f"{r[0]:.{digits}f}–{r[1]:.{digits}f}"  # type: ignore[index]


def _bd_lines(clips: list[dict[str, object]], kind: str) -> list[str]:
    lines = [("| clip | test | anchor | BD-rate pchip | BD-rate cubic | over PSNR (dB) | BD-PSNR pchip "
             "| over rate (kbit/s) |"), "|---|---|---|---|---|---|---|---|"]
    for c in clips:
        for r in c["bd"]:  # type: ignore[union-attr]
            if r.get("kind", "baseline") != kind:
                continue
            lines.append(f"| {c['name']} | {r['test']} | {r['anchor']} | {ec.fmt(r['bd_rate_pchip'], 1, ' %')} "
                         f"| {ec.fmt(r['bd_rate_cubic'], 1, ' %')} | {_span(r['psnr_overlap_db'], 2)} "
                         f"| {ec.fmt(r['bd_psnr_pchip'], 2, ' dB')} | {_span(r['rate_overlap_kbps'], 0)} |")
    return lines


def markdown(report: dict[str, object], clips: list[dict[str, object]]) -> str:
    m = report["machine"]
    lines = [(f"Measured {m['date']} on {m['cpu']}, {m['cpu_count']} cores, "  # type: ignore[index]
             f"{m['torch_threads']} torch thread(s); command: `{report['command']}`"), ""]  # type: ignore[index]
    for c in clips:
        for name, settings in (c.get("invr_curves") or {}).items():  # type: ignore[union-attr]
            lines.append(f"- {c['name']}, {name}: `{settings}`")
        caps = c.get("roundtrip_psnr") or {}
        if caps:
            lines.append(f"- {c['name']}: RGB -> YUV -> RGB without coding (the ceiling of a baseline): "
                         + ", ".join(f"{k} {v:.2f} dB" for k, v in caps.items()))  # type: ignore[union-attr]
    if lines[-1]:
        lines.append("")
    names = [c["name"] for c in clips]
    order: list[str] = []
    for c in clips:
        order += [k for k in c["table1"] if k not in order]  # type: ignore[union-attr]
    lines += [("Table 1 layout: each INVR-C curve at the reference QP, INVR-U, and each baseline at its point "
              "closest in size to the first INVR-C curve's. PSNR is RGB, mean ± std over frames; sizes in KB "
              "(1000 bytes). Baselines are labelled with the chroma sampling they were coded in; 4:4:4 is the "
              "headline for an RGB codec, 4:2:0 loses colour detail before any coding."), ""]
    head = "| | | " + " | ".join(f"{n} PSNR (dB)" for n in names) + " | | " + \
        " | ".join(f"{n} size (KB)" for n in names) + " |"
    lines += [head, "|" + "---|" * (3 + 2 * len(names))]
    for i, key in enumerate(order):
        cells_p, cells_s = [], []
        for c in clips:
            p = c["table1"].get(key)  # type: ignore[union-attr]
            cells_p.append(f"{p['psnr_mean']:.2f} ± {p['psnr_std']:.2f}" if p else "–")
            cells_s.append(f"{p['bytes'] / 1000:.1f}" if p else "–")
        lines.append(f"| {'PSNR' if i == 0 else ''} | {key} | " + " | ".join(cells_p) +
                     f" | {'File size' if i == 0 else ''} | " + " | ".join(cells_s) + " |")
    lines.append("| | | " + " | ".join("" for _ in names) + " | | " +
                 " | ".join(f"{c['raw_bytes'] / 1000:.1f} (raw RGB)" for c in clips) + " |")
    probed = {(p["codec"], p.get("pix_fmt"), p.get("profile")) for c in clips  # type: ignore[union-attr]
              for p in c["points"] if p.get("pix_fmt")}  # type: ignore[union-attr]
    if probed:
        lines += ["", "Baseline streams as decoded: " + "; ".join(
            f"{codec}: {fmt_}, profile {profile or 'n/a'}" for codec, fmt_, profile in sorted(probed)) + "."]
    common = ("Bjontegaard on mean RGB PSNR vs kbit/s. BD-rate: the test's mean log-rate difference at equal "
              "PSNR over the PSNR range where both curves exist (positive: the test needs that much more rate); "
              "BD-PSNR: mean PSNR difference at equal rate over the common rate range (negative: the test is "
              "worse). n/a: the ranges do not overlap. Curves are reduced to their Pareto points (rate control "
              "can return the same or a worse point for a higher target).")
    if any(r.get("kind") == "invr" for c in clips for r in c["bd"]):  # type: ignore[union-attr]
        lines += ["", "BD-rate of each INVR-C curve against each later one (anchor). " + common, ""]
        lines += _bd_lines(clips, "invr")
    lines += ["", "BD-rate of each INVR-C curve against each baseline (anchor), 4:4:4 first. " + common, ""]
    lines += _bd_lines(clips, "baseline")
    lines += ["", ("All points (bytes: .invr file size for INVR, raw elementary-stream file size for the "
              "baselines; encode time for INVR is the shared training time plus this point's coding when the "
              "curve's chunks are all key chunks, else the point's own encode; wall times on a shared "
              "machine)."), "",
              "| clip | codec | curve | setting | bytes | kbit/s | bpp | PSNR (dB) | min | encode s | decode s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in clips:
        for r in c["points"]:  # type: ignore[union-attr]
            lines.append(f"| {c['name']} | {r['codec']} | {r['curve']} | {r['setting']} | {r['bytes']} "
                         f"| {r['kbps']:.1f} | {r['bpp']:.4f} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} "
                         f"| {r['psnr_min']:.2f} | {r['encode_s']:.1f} | {r['decode_s']:.1f} |")
    return "\n".join(lines) + "\n"


# -- plots -----------------------------------------------------------------------------------------------
# Baselines by family (old results label "H.264" for what is now "H.264 4:2:0"); 4:4:4 solid with filled
# markers, 4:2:0 dashed with open ones. INVR-C curves take colours and markers in the order of their curves.
BASE_STYLE = {"MPEG-1": ("tab:gray", "s"), "MPEG-2": ("tab:brown", "D"), "H.264": ("tab:blue", "^"),
              "H.265": ("tab:green", "v")}
INVR_STYLE = [("tab:red", "o"), ("tab:purple", "P"), ("tab:orange", "X"), ("tab:pink", "h"),
              ("tab:olive", "p"), ("tab:cyan", "d"), ("darkorange", "<"), ("black", ">")]


def style(p: Point, invr_names: Sequence[str]) -> dict[str, object]:
    """matplotlib keywords for a point's curve: color, marker, linestyle, marker face."""
    if p.codec == "INVR-U":
        return {"color": "darkred", "marker": "*", "linestyle": ":"}
    if p.codec == "INVR-C":
        i = invr_names.index(p.curve) if p.curve in invr_names else len(invr_names)
        color, marker = INVR_STYLE[i % len(INVR_STYLE)]
        return {"color": color, "marker": marker, "linestyle": "-"}
    color, marker = BASE_STYLE.get(p.codec.split()[0], ("black", "x"))
    full = "4:4:4" in p.codec
    return {"color": color, "marker": marker, "linestyle": "-" if full else "--",
            "markerfacecolor": color if full else "none"}


def plots(outdir: Path, clip_results: list[tuple[dict[str, object], list[Point], dict[str, Point]]], tag: str,
          dpi: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    n = len(clip_results)

    def finish(fig: Any, axes: Any, name: str, xlabel: str, ylabel: str, title: str, log_x: bool = False) -> None:
        """Label each clip's axes, then save the figure as ``name``_``tag``.png."""
        for ax, (clip, _, _) in zip(axes[0], clip_results):
            if log_x:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(title.format(**clip), fontsize=9)
            ax.grid(True, which="both" if log_x else "major", alpha=0.3)
            ax.legend(fontsize=6.5)
        fig.tight_layout()
        path = outdir / f"{name}_{tag}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        written.append(str(path))

    def line_style(p: Point, invr: Sequence[str]) -> dict[str, object]:
        return {k: v for k, v in style(p, invr).items() if k in ("color", "linestyle")}

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)
    for ax, (_, pts, _) in zip(axes[0], clip_results):
        cs = curves(pts)
        invr = invr_c_curves(cs)
        for name, cpts in cs.items():
            ax.plot([p.kbps for p in cpts], [p.psnr_mean for p in cpts], label=name, ms=5, lw=1.2,
                    **style(cpts[0], invr))  # type: ignore[arg-type]
    finish(fig, axes, "rd", "kbit/s", "RGB PSNR (dB)", "{name} {width}x{height}, {frames} frames", log_x=True)

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.2), squeeze=False)
    for ax, (_, pts, chosen) in zip(axes[0], clip_results):
        invr = invr_c_curves(curves(pts))
        for key, p in chosen.items():
            ax.plot(range(len(p.psnr)), p.psnr, lw=1.1, label=f"{key} ({p.kbps:.0f} kbit/s)",
                    **line_style(p, invr))  # type: ignore[arg-type]
    finish(fig, axes, "perframe", "frame", "RGB PSNR (dB)", "{name}: per-frame PSNR")

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.2), squeeze=False)
    for ax, (_, pts, chosen) in zip(axes[0], clip_results):
        invr = invr_c_curves(curves(pts))
        allv = [v for p in chosen.values() for v in p.psnr]
        grid = np.linspace(min(allv) - 1, max(allv) + 1, 300)
        for key, p in chosen.items():
            ax.plot(grid, ec.gaussian_kde(p.psnr, grid), lw=1.2, label=key,
                    **line_style(p, invr))  # type: ignore[arg-type]
    finish(fig, axes, "density", "RGB PSNR (dB)", "density", "{name}: PSNR density over frames")
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


def point_from_row(row: dict[str, object], seconds: float) -> Point:
    return Point(str(row["codec"]), str(row["curve"]), str(row["setting"]), str(row["file"]),
                 int(row["bytes"]), str(row["bytes_kind"]), int(row["frames"]), seconds,  # type: ignore[arg-type]
                 int(row["width"]), int(row["height"]), list(row["psnr_per_frame"]),  # type: ignore[arg-type]
                 float(row["encode_s"]), float(row["decode_s"]), row.get("params"),  # type: ignore[arg-type]
                 row.get("pix_fmt"), row.get("profile"))  # type: ignore[arg-type]


def write_outputs(out: Path, report: dict[str, object], measured: list[tuple[dict[str, object], list[Point]]],
                  ref_qp: int, tag: str, dpi: int) -> list[Path]:
    """BD-rates, Table 1 choice, JSON, CSV, markdown and plots from measured points."""
    clip_results = []
    clips_json = []
    for meta, points in measured:
        chosen = table1_points(points, ref_qp)
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
    written = write_outputs(out, report, measured, settings.get("ref_qp", DEFAULT_QP), tag, args.dpi)
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
        points, invr_settings = run_invr(clip, args, outdir)
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
            "invr_curves": invr_settings,
            "roundtrip_psnr": {fmt_: round(roundtrip_psnr(clip.frames, fmt_), 4)
                               for fmt_ in sorted({BASELINES[k].pix_fmt for k in args.baselines})},
        }
        measured.append((meta, points))
    report: dict[str, object] = {
        **ec.report_head("rd", args),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    written = write_outputs(args.out, report, measured, args.ref_qp, tag, args.dpi)
    print(f"wrote {', '.join(str(w) for w in written)} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    ec.run_tool("rd", main)
