"""The baselines of tools/rd.py: MPEG-1, MPEG-2, H.264 and H.265 (4:2:0, and 4:4:4 for an RGB codec's
headline) through PyAV at target bitrates, each a raw elementary-stream file decoded back to RGB and
scored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from evalkit.clips import Clip
from evalkit.rdpoints import Point
from invrcodec.metrics import rgb_psnr

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


def encode_baseline(clip: Clip, base: Baseline, kbps: float, path: Path) -> Point:
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
