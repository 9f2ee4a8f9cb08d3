#!/usr/bin/env python3
"""Sweep the presets' QPs over many clips through the real tools, and flag what a user must never see.

Every clip, every preset, every QP: ``invr-enc --crop-square --scale SxS --frames N --preset P --qp Q``, then
``invr-dec -f rawvideo --pix-fmt rgb24``, and the decoded RGB against the frames invr-enc read (the same
PyAV reader). Per point: bytes, bits per pixel, RGB PSNR (the chunks pooled), the clip's flat-picture PSNR
(every frame at its mean colour, invrcodec.metrics.flat_psnr) and flags:

- ``collapsed``: decoded no better than the flat picture plus the encoder's guard margin (1 dB), the rule
  by which the encoder refuses a chunk (invrcodec.net.fit); a point the encoder refused (exit 1) is
  ``refused`` instead, with its message;
- ``retried``: the encoder's guard retrained a chunk (its warning), which the file does not show;
- ``inverted``: this point has fewer bytes and more PSNR than a point of a lower (finer) QP of the same
  clip and preset: the QP ladder is not monotonic there.

Beside INVR, each clip's same frames through a baseline (``--baselines``, default x264 medium 4:4:4) at every
crf of evalkit.baselines.CRF_SWEEP (its points have the baseline's name as preset and the crf as QP). Per
INVR point the table adds the baseline's PSNR at the same rate (PCHIP in log-rate, evalkit.bd.db_behind), and
per clip and preset a summary: the top PSNR, whether it reaches 40 dB or the baseline's crf-18 PSNR
(whichever is lower; issue 24), and the mean dB behind the baseline over the points from 0.1 to 0.5 bpp.

    tools/sweep.py                                    # every shared clip, fast and ultrafast, QP 22..50 by 4
    tools/sweep.py --clips carphone_pristine --presets fast --qps 30,38,46 --frames 15
    tools/sweep.py --json docs/sweep.json             # also each point as a JSON line (appended: resumable)
    tools/sweep.py --baselines ''                     # INVR only
    tools/sweep.py --json new.json --report --before old.json  # the mean dB behind, per clip, then and now

Points already in the JSON file (same clip, preset, QP, size, frames, steps) are not encoded again, so an
interrupted sweep continues where it stopped. Exit status 1 if any point collapsed or was refused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from evalkit.baselines import BASELINES, CRF_SWEEP, Target, encode_baseline
from evalkit.bd import db_behind
from evalkit.clips import Clip, load_clip

import invrcodec
from invrcodec.metrics import flat_psnr, pooled_psnr, rgb_psnr
from invrcodec.types import Tile

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
PRESETS_WITH_BANDS = ("fast", "ultrafast")  # the presets whose network follows the QP (presets.BANDS_BY_QP)
COLLAPSE_MARGIN_DB = 1.0  # the encoder's guard (invrcodec.net.fit.COLLAPSE_MARGIN_DB; not imported: no torch)
GOAL_DB, GOAL_CRF = 40.0, 18  # issue 24: some QP reaches 40 dB, or the baseline's crf-18 PSNR if lower
BEHIND_BPP = (0.1, 0.5)  # issue 24's range for the mean dB behind the baseline at equal rate
# The seam's neighbours: pixels 4 to 11 from a tile border share its content (a border through the detailed
# middle of a frame is below the frame's PSNR with or without tiles) but not its blend (overlaps up to 4).
NEAR_SEAM = (4, 12)


@dataclass
class Point:
    clip: str
    preset: str
    qp: int
    size: int
    frames: int
    steps: int | None
    bytes: int = 0
    bpp: float = 0.0
    psnr: float = float("nan")
    flat: float = float("nan")
    seconds: float = 0.0
    flags: str = ""
    error: str = ""
    chunk_frames: int | None = None  # invr-enc --chunk-frames (None: the preset's, by the QP)
    tile: str | None = None  # invr-enc --tile (None: the default, auto)
    tiles: int = 1  # networks per chunk the file has
    seam: float = float("nan")  # PSNR of the pixels beside a tile border (both sides), when tiled
    near_seam: float = float("nan")  # PSNR of the pixels NEAR_SEAM px from a border: its content, unblended
    overlap: int | None = None  # invr-enc --tile-overlap (None: the default)

    def key(self) -> tuple[object, ...]:
        return (self.clip, self.preset, self.qp, self.size, self.frames, self.steps, self.chunk_frames, self.tile,
                self.overlap)


def shared_clips() -> list[Path]:
    return sorted(MEDIA.glob("*.mp4")) + sorted((MEDIA / "more").glob("*.mp4"))


def tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def encode_baseline_point(clip: Clip, point: Point, workdir: Path) -> None:
    """One baseline point: the clip's frames at crf ``point.qp``, decoded and scored as INVR's are."""
    base = BASELINES[point.preset]
    t0 = time.perf_counter()
    scored = encode_baseline(clip, base, Target(crf=point.qp), workdir / f"{point.clip}.{base.ext}")
    point.seconds = round(time.perf_counter() - t0, 1)
    point.bytes = scored.bytes
    point.bpp = round(point.bytes * 8 / (scored.width * scored.height * scored.frames), 5)
    point.psnr = round(pooled_psnr(scored.psnr), 3)  # the frames pooled, as rgb_psnr scores INVR's


def encode_decode(path: Path, point: Point, ref: np.ndarray, workdir: Path) -> None:
    out = workdir / f"{point.clip}-{point.preset}-qp{point.qp}.invr"
    # -an: the picture's bytes only (invr-enc copies the source's audio by default)
    square = ["--crop-square", "--scale", f"{point.size}x{point.size}"] if point.size else []  # 0: native size
    enc = [tool("invr-enc"), "-y", "-q", "-an", "--no-progress", *square, "--frames", str(point.frames),
           "--preset", point.preset, "--qp", str(point.qp)]
    if point.tile:
        enc += ["--tile", point.tile]
    if point.overlap is not None:
        enc += ["--tile-overlap", str(point.overlap)]
    if point.steps:
        enc += ["--steps", str(point.steps)]
    if point.chunk_frames:
        enc += ["--chunk-frames", str(point.chunk_frames)]
    t0 = time.perf_counter()
    run = subprocess.run([*enc, str(path), str(out)], capture_output=True, text=True)
    point.seconds = round(time.perf_counter() - t0, 1)
    if run.returncode != 0:
        point.flags, point.error = "refused", (run.stderr.strip().splitlines() or ["?"])[-1]
        return
    if "retrying" in run.stderr or "keeping the best" in run.stderr:  # the guard stepped in (warnings, -q)
        point.flags = "retried"
    point.bytes = out.stat().st_size
    point.bpp = round(point.bytes * 8 / ref[..., 0].size, 5)
    dec = subprocess.run([tool("invr-dec"), "-q", "-f", "rawvideo", "--pix-fmt", "rgb24", str(out), "-"],
                         capture_output=True, check=True)
    decoded = np.frombuffer(bytearray(dec.stdout), np.uint8).reshape(ref.shape)
    point.psnr = round(rgb_psnr(decoded, ref), 3)
    with invrcodec.open(out) as f:
        tiles = f.header.tile_list()
    point.tiles = len(tiles)
    if len(tiles) > 1:
        seam = seam_mask(tiles, ref.shape[2], ref.shape[1])
        point.seam = round(rgb_psnr(decoded[:, seam], ref[:, seam]), 3)
        near = seam_mask(tiles, ref.shape[2], ref.shape[1], *NEAR_SEAM)
        point.near_seam = round(rgb_psnr(decoded[:, near], ref[:, near]), 3)
    if point.psnr < point.flat + COLLAPSE_MARGIN_DB:
        point.flags = ",".join(f for f in ("collapsed", point.flags) if f)
    out.unlink()


def seam_mask(tiles: tuple[Tile, ...], width: int, height: int, near: int = 0, far: int = 1) -> np.ndarray:
    """(H, W) bool: the pixels ``near`` to ``far - 1`` pixels from a border between two tiles, on either side
    (the default: the two pixels beside it), and not nearer to another."""
    distance = np.full((height, width), np.iinfo(np.int64).max)
    for x in {t.x for t in tiles} - {0}:
        across = np.concatenate([np.arange(x - 1, -1, -1), np.arange(width - x)])  # column c: x-1-c or c-x
        distance = np.minimum(distance, across[None, :])
    for y in {t.y for t in tiles} - {0}:
        across = np.concatenate([np.arange(y - 1, -1, -1), np.arange(height - y)])
        distance = np.minimum(distance, across[:, None])
    return (near <= distance) & (distance < far)


def flag_inversions(points: list[Point]) -> None:
    """Flag points with fewer bytes and more PSNR than a finer QP's point of the same clip and preset."""
    groups: dict[tuple[object, ...], list[Point]] = {}
    for p in points:
        if not p.error:
            groups.setdefault((p.clip, p.preset, p.chunk_frames, p.tile, p.overlap), []).append(p)
    for group in groups.values():
        group.sort(key=lambda p: p.qp)
        for i, p in enumerate(group):
            if any(q.bytes > p.bytes and q.psnr < p.psnr for q in group[:i]) and "inverted" not in p.flags:
                p.flags = ",".join(f for f in (p.flags, "inverted") if f)


def baseline_curves(points: list[Point], baseline: str) -> dict[str, list[Point]]:
    """Each clip's baseline points, by increasing rate."""
    curves: dict[str, list[Point]] = {}
    for p in sorted(points, key=lambda p: p.bpp):
        if p.preset == baseline and not p.error:
            curves.setdefault(p.clip, []).append(p)
    return curves


def psnr_at(curve: list[Point], bpp: float) -> float | None:
    """The curve's PSNR at ``bpp`` (log-rate PCHIP), or None outside its rates."""
    return db_behind([p.bpp for p in curve], [p.psnr for p in curve], bpp) if curve else None


def table(points: list[Point], baseline: str | None) -> str:
    invr = [p for p in points if p.preset not in BASELINES]
    head = f" {BASELINES[baseline].label} at that rate |" if baseline else ""
    lines = [f"| clip | preset | QP | chunk frames | tiles | bytes | bpp | PSNR dB | seam dB (vs frame, vs 4-11 px "
             f"away) | flat dB |{head} s | flags |", "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if baseline else "") + "---|---|"]
    curves = baseline_curves(points, baseline) if baseline else {}
    for p in invr:
        psnr = "-" if p.error else f"{p.psnr:.2f}"
        flags = p.flags + (f" ({p.error})" if p.error else "")
        other = ""
        if baseline:
            curve = curves.get(p.clip, [])
            at = None if p.error else psnr_at(curve, p.bpp)
            top = curve[-1] if curve else None  # its highest rate
            if at is not None:
                other = f" {at:.2f} ({at - p.psnr:+.2f}) |"
            elif top is not None and p.bpp > top.bpp:  # past crf 2: say where the baseline stops
                other = f" above its rates (crf {top.qp}: {top.psnr:.2f} dB at {top.bpp:.2f} bpp) |"
            else:
                other = " outside its rates |"
        seam = "-" if p.tiles == 1 or p.error else f"{p.seam:.2f} ({p.seam - p.psnr:+.2f}, {p.seam - p.near_seam:+.2f})"
        overlap = "" if p.overlap is None or p.tiles == 1 else f", overlap {p.overlap}"
        lines.append(f"| {p.clip} | {p.preset} | {p.qp} | {p.chunk_frames or 'by QP'} | {p.tiles}{overlap} | {p.bytes:,} | "
                     f"{p.bpp:.4f} | {psnr} | {seam} | {p.flat:.2f} |{other} {p.seconds:.0f} | {flags} |")
    return "\n".join(lines)


def dbs_behind(group: list[Point], curve: list[Point]) -> list[float]:
    """How far the baseline ``curve`` is ahead at equal rate at each point of ``group`` in BEHIND_BPP."""
    return [at - p.psnr for p in group if not p.error and BEHIND_BPP[0] <= p.bpp <= BEHIND_BPP[1]
            and (at := psnr_at(curve, p.bpp)) is not None]


def before_and_now(points: list[Point], before: list[Point], baseline: str, presets: list[str]) -> str:
    """Per clip, the mean dB behind the baseline over BEHIND_BPP of the INVR points of ``presets`` before
    (another sweep's file) and now; the baseline's points from either."""
    label = BASELINES[baseline].label
    curves = baseline_curves(list({p.key(): p for p in before + points}.values()), baseline)
    lines = [f"| clip | mean dB behind {label} before (points) | now (points) | change |", "|---|---|---|---|"]
    totals: tuple[list[float], list[float]] = ([], [])
    for clip in dict.fromkeys(p.clip for p in points if p.preset in presets):
        dbs = [dbs_behind([p for p in group if p.clip == clip and p.preset in presets], curves.get(clip, []))
               for group in (before, points)]
        cells = [f"{np.mean(d):+.2f} ({len(d)})" if d else "no point" for d in dbs]
        change = f"{np.mean(dbs[1]) - np.mean(dbs[0]):+.2f}" if all(dbs) else "-"
        lines.append(f"| {clip} | {cells[0]} | {cells[1]} | {change} |")
        for total, d in zip(totals, dbs):
            total += d
    if all(totals):
        b, n = (float(np.mean(t)) for t in totals)
        lines.append(f"| all | {b:+.2f} ({len(totals[0])}) | {n:+.2f} ({len(totals[1])}) | {n - b:+.2f} |")
    return "\n".join(lines)


def summary(points: list[Point], baseline: str) -> str:
    """Per clip and INVR preset: the top PSNR against issue 24's goal, and the mean dB behind the baseline
    at equal rate over the points from 0.1 to 0.5 bpp."""
    label = BASELINES[baseline].label
    lines = [f"| clip | preset | top PSNR dB | {label} crf {GOAL_CRF} dB | goal dB | reached | monotonic | "
             f"mean dB behind {label}, {BEHIND_BPP[0]}-{BEHIND_BPP[1]} bpp (points) |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str, int | None, str | None, int | None], list[Point]] = {}
    for p in points:
        if p.preset not in BASELINES and not p.error:
            groups.setdefault((p.clip, p.preset, p.chunk_frames, p.tile, p.overlap), []).append(p)
    curves = baseline_curves(points, baseline)
    behind_all: list[float] = []
    for (clip, preset, _, tile, overlap), group in groups.items():
        curve = curves.get(clip, [])
        crf = next((p.psnr for p in curve if p.qp == GOAL_CRF), None)
        goal = min(GOAL_DB, crf) if crf is not None else GOAL_DB
        top = max(p.psnr for p in group)
        behind = dbs_behind(group, curve)
        behind_all += behind
        mean = f"{np.mean(behind):+.2f} ({len(behind)})" if behind else "no point"
        name = preset if tile is None else f"{preset}, tile {tile}"
        name += "" if overlap is None else f", overlap {overlap}"
        lines.append(f"| {clip} | {name} | {top:.2f} | {'-' if crf is None else f'{crf:.2f}'} | {goal:.2f} | "
                     f"{'yes' if top >= goal else 'no'} | {'no' if any('inverted' in p.flags for p in group) else 'yes'}"
                     f" | {mean} |")
    if behind_all:
        lines.append(f"| all | | | | | | | {np.mean(behind_all):+.2f} ({len(behind_all)}) |")
    return "\n".join(lines)


def against(points: list[Point], path: Path, curve: str = "INVR-C default") -> str:
    """Each clip's INVR points against an older ``tools/rd.py`` run's curve (its results.json), its frames'
    PSNRs pooled as here: dB at each point against that curve at the same rate, and the BD-rate."""
    from evalkit.bd import bd_rate

    lines = [f"| clip | QP | bpp | PSNR dB | {path} at that rate | BD-rate |", "|---|---|---|---|---|---|"]
    for clip in json.loads(path.read_text())["clips"]:
        older = {p["setting"]: p for p in clip["points"] if p["curve"] == curve}
        ref = sorted((p["bpp"], pooled_psnr(p["psnr_per_frame"])) for p in older.values())
        mine = sorted((p for p in points if p.clip == clip["name"] and p.preset not in BASELINES and not p.error
                       and p.size == clip["width"] and p.frames == clip["frames"]), key=lambda p: p.bpp)
        if not ref or not mine:
            continue
        bd = bd_rate([r[0] for r in ref], [r[1] for r in ref], [p.bpp for p in mine], [p.psnr for p in mine])
        for p in mine:
            at = db_behind([r[0] for r in ref], [r[1] for r in ref], p.bpp)
            there = "outside its rates" if at is None else f"{at:.2f} ({p.psnr - at:+.2f})"
            lines.append(f"| {p.clip} | {p.qp} | {p.bpp:.3f} | {p.psnr:.2f} | {there} | {bd:+.1f}% |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default="", help="comma-separated clip names or paths (default: every shared clip)")
    ap.add_argument("--presets", default=",".join(PRESETS_WITH_BANDS))
    ap.add_argument("--qps", default=",".join(map(str, range(22, 51, 4))))
    ap.add_argument("--size", type=int, default=128,
                    help="square crop scaled to SIZExSIZE (default 128); 0: the clip's own size")
    ap.add_argument("--tile", default=None, help="invr-enc --tile (auto, none or WxH; default: the encoder's)")
    ap.add_argument("--tile-overlap", type=int, default=None, help="invr-enc --tile-overlap (default: the encoder's)")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--steps", type=int, default=None, help="invr-enc --steps (default: the preset's)")
    ap.add_argument("--chunk-frames", type=int, default=None, help="invr-enc --chunk-frames (default: the preset's)")
    ap.add_argument("--baselines", default="h264-444",
                    help=f"comma-separated baselines swept by crf beside INVR ({', '.join(k for k, b in BASELINES.items() if b.crf)}; '' for none)")
    ap.add_argument("--json", type=Path, default=None, help="append each point as a JSON line; skip points in it")
    ap.add_argument("--report", action="store_true", help="encode nothing: report the points in --json")
    ap.add_argument("--before", type=Path, default=None,
                    help="also compare the mean dB behind the baseline with an earlier sweep's JSON file")
    ap.add_argument("--against", type=Path, default=None,
                    help="also compare the points with an older tools/rd.py run's default curve (its results.json)")
    args = ap.parse_args()

    clips = shared_clips()
    if args.clips:
        wanted = args.clips.split(",")
        clips = [Path(c) if os.path.exists(c) else next((p for p in shared_clips() if p.stem == c), Path(c))
                 for c in wanted]
    missing = [str(c) for c in clips if not c.exists()]
    if not clips or missing:
        print(f"sweep.py: error: no such clip: {', '.join(missing) or 'none found in ' + str(MEDIA)}",
              file=sys.stderr)
        return 2
    done: dict[tuple[object, ...], Point] = {}
    if args.json and args.json.exists():
        for line in args.json.read_text().splitlines():
            p = Point(**json.loads(line))
            done[p.key()] = p
    baselines = [b for b in args.baselines.split(",") if b]
    unknown = [b for b in baselines if b not in BASELINES or not BASELINES[b].crf]
    if unknown:
        print(f"sweep.py: error: no crf baseline {', '.join(unknown)}", file=sys.stderr)
        return 2
    points: list[Point] = []

    def record(point: Point) -> None:
        points.append(point)
        print(f"{point.clip} {point.preset} qp {point.qp}: {point.bytes} B, {point.psnr:.2f} dB "
              f"(flat {point.flat:.2f}), {point.seconds:.0f} s {point.flags} {point.error}".rstrip(), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(asdict(point)) + "\n")

    if args.report:
        points = [p for p in done.values() if p.clip in {c.stem for c in clips}]
        clips = []
    with tempfile.TemporaryDirectory(prefix="invr-sweep-") as tmp:
        for path in clips:
            clip = load_clip(path, args.size or None, args.frames)  # the frames invr-enc reads with these options
            ref = clip.frames
            flat = round(flat_psnr(ref), 3)
            for name in baselines:
                for crf in CRF_SWEEP:
                    point = Point(path.stem, name, crf, args.size, len(ref), None, flat=flat)
                    if point.key() in done:
                        points.append(done[point.key()])
                    else:
                        encode_baseline_point(clip, point, Path(tmp))
                        record(point)
            for preset in args.presets.split(","):
                for qp in (int(q) for q in args.qps.split(",")):
                    point = Point(path.stem, preset, qp, args.size, len(ref), args.steps, flat=flat,
                                  chunk_frames=args.chunk_frames, tile=args.tile, overlap=args.tile_overlap)
                    if point.key() in done:
                        points.append(done[point.key()])
                        continue
                    encode_decode(path, point, ref, Path(tmp))
                    record(point)
    flag_inversions(points)
    print(table(points, baselines[0] if baselines else None))
    if baselines:
        print()
        print(summary(points, baselines[0]))
    if args.before and baselines:
        before = [Point(**json.loads(line)) for line in args.before.read_text().splitlines()]
        print()
        print(before_and_now(points, before, baselines[0], args.presets.split(",")))
    if args.against:
        print()
        print(against([p for p in points if p.preset in args.presets.split(",")], args.against))
    bad = [p for p in points if p.flags.startswith(("collapsed", "refused"))]
    inverted = [p for p in points if "inverted" in p.flags]
    print(f"{len(points)} points: {len(bad)} collapsed or refused, {len(inverted)} inverted")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
