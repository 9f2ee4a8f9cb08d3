"""Clips: video files read into RGB frames the way the paper measures them (centre square crop, area scale),
and synthetic clips written losslessly (Y4M, FFV1) for runs that need a file of known frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from invrcodec.media.pyav import VideoReader
from invrcodec.types import StreamInfo

ROOT = Path(__file__).resolve().parents[2]
SHARED_MEDIA = ROOT.parent / "shared" / "media"


@dataclass
class Clip:
    name: str
    path: str
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, after crop/scale
    info: StreamInfo
    source_size: tuple[int, int]  # width, height before crop/scale

    @property
    def fps(self) -> float:
        return float(self.info.frame_rate)

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps

    @property
    def raw_bytes(self) -> int:
        """Size of the clip as 8-bit RGB (the representation PSNR is measured on)."""
        t, h, w, c = self.frames.shape
        return t * h * w * c


def parse_size(text: str) -> int | None:
    """``native`` -> None (no crop, no scale); ``N`` -> centre square crop, area-scaled to N x N."""
    if text.lower() == "native":
        return None
    value = int(text)
    if value < 8:
        raise ValueError("size must be at least 8 (or 'native')")
    return value


def load_clip(path: str | Path, size: int | None, frames: int | None, seek: int = 0) -> Clip:
    """Frames of a video file through :class:`invrcodec.media.pyav.VideoReader` (area scaling, the paper's)."""
    kwargs: dict[str, object] = {"seek": seek, "frames": frames}
    if size is not None:
        kwargs.update(crop_square=True, scale=(size, size))
    with VideoReader(path, **kwargs) as reader:  # type: ignore[arg-type]
        data = np.stack(list(reader))
        info = replace(reader.info, frame_count=len(data))
        src = reader.source_info
    return Clip(Path(path).stem, str(path), data, info, (src.width, src.height))


def synthetic_frames(width: int, height: int, frames: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Smooth moving colour gradients, one uint8 (H, W, 3) frame at a time."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for t in range(frames):
        r = 128 + 90 * np.sin(2 * np.pi * x / max(width, 2) + phase[0] + 0.3 * t)
        g = 128 + 90 * np.cos(2 * np.pi * y / max(height, 2) + phase[1] - 0.2 * t)
        b = 128 + 60 * np.sin(2 * np.pi * (x + y) / max(width + height, 2) + phase[2] + 0.1 * t)
        yield np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def write_y4m(path: Path, width: int, height: int, frames: int, seed: int = 0) -> Path:
    """A lossless (yuv444p) Y4M clip of :func:`synthetic_frames`, written with PyAV."""
    import av

    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("wrapped_avframe", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for i, rgb in enumerate(synthetic_frames(width, height, frames, seed)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_lossless(frames: np.ndarray, rate: Fraction, path: Path) -> Path:
    """RGB frames into a lossless FFV1 file (bgr0): decoded back to exactly these frames."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")))
        out.mux(stream.encode(None))
    return path
