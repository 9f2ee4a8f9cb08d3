"""The baselines of tools/rd.py: MPEG-1, MPEG-2, H.264 and H.265 (4:2:0, and 4:4:4 for an RGB codec's
headline) through PyAV at target bitrates, and H.264/H.265 also at constant qualities (x264/x265 CRF, down to
crf 2) so that their curves reach 45-55 dB and INVR's highest rates whatever rates INVR's curves span; each
point a raw elementary-stream file decoded back to RGB and scored."""

from __future__ import annotations

import time
from collections.abc import Sequence
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
# x264/x265 constant-quality points (their CRF scale runs 0-51): crf 2 is close to lossless (45-55 dB RGB PSNR
# in 4:4:4), 51 the coarsest; every 4 steps is roughly a factor 1.6 in rate.
CRF_SWEEP: tuple[int, ...] = (2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 51)


@dataclass(frozen=True)
class Baseline:
    label: str  # as in the tables: codec and chroma sampling
    codec: str  # PyAV / FFmpeg encoder
    fmt: str  # raw elementary-stream muxer
    ext: str
    pix_fmt: str = "yuv420p"  # what the RGB frames are converted to, and what the decoder must give back
    options: tuple[tuple[str, str], ...] = ()
    crf: bool = False  # the encoder has a constant-quality mode (x264/x265 ``crf``), swept besides bitrates


@dataclass(frozen=True)
class Target:
    """One baseline operating point: a target bitrate (any codec's rate control) or a constant quality (CRF,
    x264/x265). Exactly one of the two is set."""

    kbps: float | None = None
    crf: int | None = None

    def __post_init__(self) -> None:
        if (self.kbps is None) == (self.crf is None):
            raise ValueError("a baseline target is a bitrate or a CRF, exactly one of them")

    @property
    def setting(self) -> str:
        """As in the tables' setting column."""
        return f"crf={self.crf}" if self.crf is not None else f"target={self.kbps:.1f} kbit/s"

    @property
    def stem(self) -> str:
        """The file name's part for this target (sorts by rate within each kind)."""
        return f"crf{self.crf:02d}" if self.crf is not None else f"{self.kbps:08.1f}k"


BASELINES: dict[str, Baseline] = {
    "mpeg1": Baseline("MPEG-1 4:2:0", "mpeg1video", "mpeg1video", "m1v"),
    "mpeg2": Baseline("MPEG-2 4:2:0", "mpeg2video", "mpeg2video", "m2v"),
    "h264": Baseline("H.264 4:2:0", "libx264", "h264", "264", "yuv420p", X264, crf=True),
    # High 4:4:4 Predictive
    "h264-444": Baseline("H.264 4:4:4", "libx264", "h264", "264", "yuv444p", X264, crf=True),
    "h265": Baseline("H.265 4:2:0", "libx265", "hevc", "265", "yuv420p", X265, crf=True),
    # Main 4:4:4 (RExt)
    "h265-444": Baseline("H.265 4:4:4", "libx265", "hevc", "265", "yuv444p", X265, crf=True),
}
DEFAULT_BASELINES = "mpeg1,h264,h264-444,h265,h265-444"


def encoder_options(base: Baseline, target: Target) -> dict[str, str]:
    """The encoder's private options for one target: the baseline's own, plus ``crf`` for a CRF target."""
    if target.crf is None:
        return dict(base.options)
    if not base.crf:
        raise ValueError(f"{base.label} ({base.codec}) has no CRF mode")
    return {**dict(base.options), "crf": str(target.crf)}


def encode_baseline(clip: Clip, base: Baseline, target: float | Target, path: Path) -> Point:
    """Encode the clip's RGB frames (converted to ``base.pix_fmt``) at a target (a bitrate in kbit/s, or
    a :class:`Target`: bitrate or CRF), decode, check the decoded pixel format, convert back to RGB and
    score."""
    if not isinstance(target, Target):
        target = Target(kbps=float(target))
    frames, info = clip.frames, clip.info
    t0 = time.perf_counter()
    with av.open(str(path), "w", format=base.fmt) as container:
        stream = container.add_stream(base.codec, rate=Fraction(info.frame_rate),
                                      options=encoder_options(base, target))
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, base.pix_fmt
        stream.bit_rate = int(target.kbps * 1000) if target.kbps is not None else 0  # 0: no rate control
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
    return Point(base.label, base.label, target.setting, str(path), path.stat().st_size,
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


def baseline_sweep(base: Baseline, kbps_targets: Sequence[float], crfs: Sequence[int]) -> list[Target]:
    """A baseline's points: every target bitrate (matched-bitrate points), then, where the encoder has a CRF
    mode, every CRF of ``crfs`` (the whole quality range, up to near-lossless, whatever INVR's rates)."""
    return [Target(kbps=float(k)) for k in kbps_targets] + ([Target(crf=c) for c in crfs] if base.crf else [])
