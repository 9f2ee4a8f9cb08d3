"""What tools/rd.py and tools/ablation.py share: clip loading, INVR encoding through real .invr files,
per-frame RGB PSNR of decoded files, Bjontegaard deltas, a density estimate and the machine description.

Nothing here changes how invrcodec encodes. :func:`encode_invr_points` writes the points of one training
through the encoder's train-once-code-many API (:func:`invrcodec.codec.ladder.encode_ladder`: key chunks trained
once, P-chunks per point), every file byte for byte the one :class:`invrcodec.codec.encoder.Encoder` writes with the
same config (tests/test_tools_eval.py checks this); :func:`encode_with_encoder` is one full encode per point.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from scipy.stats import gaussian_kde as stats_gaussian_kde
from scipy.stats import norm

import invrcodec
from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.errors import InvrError
from invrcodec.net.fit import FitProgress, FitResult
from invrcodec.codec.ladder import encode_ladder
from invrcodec.media.pyav import VideoReader
from invrcodec.metrics import rgb_psnr
from invrcodec.types import Packet, Prediction, StreamInfo

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = ROOT.parent / "shared" / "media"


# -- clips -----------------------------------------------------------------------------------------------
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


@contextlib.contextmanager
def compile_at_once() -> Iterator[None]:
    """Presets with compile=True compile every fit made inside (INVRCODEC_COMPILE=always): for timings of the
    compiled step with the one-off compile measured or warmed up apart. invr-enc itself compiles only fits of
    many steps without a PSNR target (invrcodec.net.fit.compiles)."""
    before = os.environ.get("INVRCODEC_COMPILE")
    os.environ["INVRCODEC_COMPILE"] = "always"
    try:
        yield
    finally:
        if before is None:
            del os.environ["INVRCODEC_COMPILE"]
        else:
            os.environ["INVRCODEC_COMPILE"] = before


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


# -- INVR through real files -----------------------------------------------------------------------------
@dataclass
class InvrPoint:
    """One coded operating point: its config and where its file went."""

    label: str
    config: EncoderConfig
    path: Path
    packets: list[Packet] = field(default_factory=list)
    code_seconds: float = 0.0  # weight coding + the encoder's PSNR render, summed over chunks
    train_seconds: float = 0.0  # the key-chunk training it shares with the points of its representation


def resolved_config(cfg: EncoderConfig, info: StreamInfo) -> EncoderConfig:
    """The config an :class:`Encoder` of this stream actually runs (e.g. the encoding band-limited to the
    frame size)."""
    return Encoder(info, cfg).config


def all_key_chunks(cfg: EncoderConfig, info: StreamInfo, frame_count: int) -> bool:
    """Whether every chunk of a ``frame_count``-frame clip is a key chunk under ``cfg`` (no P-chunks): only
    then is the training independent of the QP, so that :func:`encode_invr_points` may share it."""
    return _all_key(Encoder(info, cfg), frame_count)


def _all_key(enc: Encoder, frame_count: int) -> bool:
    chunks = -(-frame_count // enc.config.representation.chunk_frames)
    return all(enc.prediction_of(i) == Prediction.KEY for i in range(chunks))


def encode_invr_points(frames: np.ndarray, info: StreamInfo, points: Sequence[tuple[str, EncoderConfig, Path]],
                       log: Callable[[str], None] = print) -> tuple[list[InvrPoint], float, list[FitResult]]:
    """Every point, the points of each representation from one training through
    :func:`invrcodec.codec.ladder.encode_ladder` (key chunks trained once, P-chunks per point; byte for byte the
    :class:`Encoder`'s files), each muxed into its own .invr file. A curve whose width follows the QP
    (presets.WIDTH_BY_QP) has one training per width.

    Returns the points (with the configs the encoder resolved), the training wall time of the key chunks
    (all representations) and the key chunks' fit results.
    """
    groups: dict[object, list[int]] = {}
    for i, (_, cfg, _) in enumerate(points):
        groups.setdefault(cfg.representation, []).append(i)
    out: list[InvrPoint | None] = [None] * len(points)
    train_seconds, fits = 0.0, []
    for members in groups.values():
        ladder = encode_ladder(frames, info, [points[i][1] for i in members], log=log)
        train_seconds += ladder.train_seconds
        fits += ladder.fits
        for i, rung in zip(members, ladder.rungs):
            label, _, path = points[i]
            path.parent.mkdir(parents=True, exist_ok=True)
            with invrcodec.open(path, "w", header=rung.header) as container:
                for packet in rung.packets:
                    container.mux(packet)
            out[i] = InvrPoint(label, rung.config, path, rung.packets, rung.code_seconds, ladder.train_seconds)
    return [p for p in out if p is not None], train_seconds, fits


def encode_with_encoder(frames: np.ndarray, info: StreamInfo, cfg: EncoderConfig, path: Path) -> float:
    """The plain path: :class:`Encoder` end to end into ``path``; returns wall seconds."""
    t0 = time.perf_counter()
    enc = Encoder(info, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with invrcodec.open(path, "w", header=enc.header) as container:
        for frame in frames:
            container.mux(enc.encode(frame))
        container.mux(enc.encode(None))
    return time.perf_counter() - t0


def decode_invr_psnr(path: Path, reference: np.ndarray) -> tuple[list[float], float]:
    """Per-frame RGB PSNR of a .invr file's decoded frames against ``reference``; and decode seconds."""
    psnrs: list[float] = []
    t0 = time.perf_counter()
    with invrcodec.open(path) as container:
        for i, frame in enumerate(container.decode()):
            psnrs.append(rgb_psnr(frame, reference[i]))
    seconds = time.perf_counter() - t0
    if len(psnrs) != len(reference):
        raise RuntimeError(f"{path}: decoded {len(psnrs)} frames, expected {len(reference)}")
    return psnrs, seconds


def progress_printer(prefix: str, log: Callable[[str], None] = print) -> Callable[[FitProgress], None]:
    def show(p: FitProgress) -> None:
        log(f"  {prefix} step {p.step}/{p.steps}: {p.psnr:.2f} dB, {p.elapsed:.1f} s")

    return show


# -- Bjontegaard deltas --------------------------------------------------------------------------------
def pchip_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Integral over [lo, hi] (inside [x0, xn]) of the monotone piecewise-cubic interpolant of (x, y)
    (SciPy's PCHIP: Fritsch-Carlson slopes with the three-point end rule, as MATLAB's pchip)."""
    return float(PchipInterpolator(np.asarray(x, float), np.asarray(y, float)).integrate(lo, hi))


def cubic_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the least-squares cubic through (x, y) (Bjontegaard's VCEG-M33)."""
    fit = np.polynomial.Polynomial.fit(np.asarray(x, float), np.asarray(y, float), 3)
    prim = fit.integ()
    return float(prim(hi) - prim(lo))


def pareto(rates: Sequence[float], psnrs: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points no other point beats on both axes, by increasing rate (rate control can repeat a rate)."""
    keep_r: list[float] = []
    keep_p: list[float] = []
    for r, p in sorted(zip(rates, psnrs), key=lambda rp: (rp[0], -rp[1])):
        if not keep_p or p > keep_p[-1] and r > keep_r[-1]:
            keep_r.append(r)
            keep_p.append(p)
    return keep_r, keep_p


def overlap(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """The common range of two sets of values, or None."""
    if not len(a) or not len(b):
        return None
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    return (float(lo), float(hi)) if hi > lo else None


def _bd(xa: Sequence[float], ya: Sequence[float], xt: Sequence[float], yt: Sequence[float],
        method: str) -> tuple[float, float, float] | None:
    """Mean of (yt - ya) over the overlap of the x ranges; None without an overlap or enough points."""
    need = 4 if method == "cubic" else 2
    if min(len(xa), len(xt)) < need:
        return None
    lo, hi = max(min(xa), min(xt)), min(max(xa), max(xt))
    if hi <= lo:
        return None
    integral = cubic_integral if method == "cubic" else pchip_integral
    ia = integral(xa, ya, lo, hi)
    it = integral(xt, yt, lo, hi)
    return (it - ia) / (hi - lo), lo, hi


def bd_rate(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
            test_psnr: Sequence[float], method: str = "pchip") -> float | None:
    """Bjontegaard delta rate (%) of the test curve against the anchor: the mean log-rate difference at
    equal PSNR over the overlapping PSNR range; negative means the test needs fewer bits.

    ``method`` is ``pchip`` (piecewise cubic, as the current VCEG/JVET tools) or ``cubic`` (one cubic fit,
    Bjontegaard's VCEG-M33; needs 4 points per curve). Curves are reduced to their Pareto points first.
    Returns None when the PSNR ranges do not overlap.
    """
    ar, ap = pareto(anchor_rate, anchor_psnr)
    tr, tp = pareto(test_rate, test_psnr)
    res = _bd(ap, np.log10(ar), tp, np.log10(tr), method)
    return None if res is None else float((10 ** res[0] - 1) * 100)


def bd_psnr(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
            test_psnr: Sequence[float], method: str = "pchip") -> float | None:
    """Bjontegaard delta PSNR (dB) of the test against the anchor at equal rate (overlapping log-rate
    range); positive means the test is better. None when the rate ranges do not overlap."""
    ar, ap = pareto(anchor_rate, anchor_psnr)
    tr, tp = pareto(test_rate, test_psnr)
    res = _bd(np.log10(ar), ap, np.log10(tr), tp, method)
    return None if res is None else float(res[0])


# -- statistics and reporting -----------------------------------------------------------------------------
def gaussian_kde(values: Sequence[float], grid: np.ndarray, min_bandwidth: float = 0.05) -> np.ndarray:
    """Gaussian kernel density with Scott's bandwidth (SciPy's :class:`scipy.stats.gaussian_kde`), evaluated on
    ``grid``; the bandwidth is at least ``min_bandwidth`` (dB) so that a clip whose frames all score alike
    still draws a peak rather than failing on a singular covariance."""
    v = np.asarray(values, float)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    if std * len(v) ** (-1 / 5) < min_bandwidth:
        if std == 0.0:
            return np.mean([norm.pdf(grid, loc=x, scale=min_bandwidth) for x in v], axis=0)
        return stats_gaussian_kde(v, bw_method=min_bandwidth / std)(grid)
    return stats_gaussian_kde(v, bw_method="scott")(grid)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std())


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import av

    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "av": av.__version__,
        "invrcodec": invrcodec.__version__,
        "date": _dt.date.today().isoformat(),
    }


def command_line() -> str:
    return " ".join(["python", *[a if a and " " not in a else repr(a) for a in sys.argv]])


def report_head(tool: str, args: argparse.Namespace) -> dict[str, object]:
    """What every tool's JSON report starts with: the tool, its command line, the machine, its settings."""
    return {
        "tool": tool, "command": command_line(), "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def run_tool(tool: str, main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status; a codec or value error is one line on stderr and status 1."""
    try:
        sys.exit(main())
    except (InvrError, ValueError) as exc:
        print(f"{tool}: error: {exc}", file=sys.stderr)
        sys.exit(1)


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else f"{value:.{digits}f}{suffix}"
