"""Where to sample a chunk's network: output size, region and frame times (spec: "Sampling at another size,
time or region").

A network maps normalised (x, y, t) to colour, so a decoder may evaluate it anywhere, not only at the pixel
centres and frames it was trained on. This module is the geometry of that, and nothing else: it turns a
requested size, crop and frame rate into the normalised positions of the *training* coordinate system
(paper eq. 4) at which :mod:`invrcodec.codec.decoder` evaluates a network, and into the chunk(s) and weights each
output frame is made of. It imports neither torch nor the format layer's bytes.

Space: pixel ``i`` of a ``W``-column frame sits at ``x = 2 (i / W - 1/2)`` and covers ``[i - 1/2, i + 1/2)``
in source-pixel units. An output of ``n`` columns showing source columns ``[x0, x0 + w)`` puts its column
``j`` at the centre of its own cell, ``u = x0 + (j + 1/2) w / n - 1/2``, i.e. ``x = 2 (u / W - 1/2)``: the
half-pixel-centre convention of FFmpeg's scaler and area resampling. ``n = w = W, x0 = 0`` gives eq. 4 bit
for bit, because ``u / W`` is computed as one quotient of integers.

Time: output frame ``n`` at rate ``r'`` of a stream at rate ``r`` starting at frame ``s0`` shows source
instant ``s = s0 + n r / r'`` (in frames). Inside a chunk of ``T`` frames starting at ``F`` that is
``t = 2 ((s - F) / T - 1/2)``; between the last frame of one chunk and the first of the next,
:data:`BOUNDARIES` says what is shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

import numpy as np

from invrcodec.errors import InvrConfigError
from invrcodec.types import StreamInfo, Tile

# The format's limit on a frame side (format.LIMITS["max_dimension"]); an output beyond it could not be
# stored or described, so it is refused. Repeated here so that this module stays free of the format layer.
MAX_DIMENSION = 65535
# At most this many output frames (the format's u32 frame count).
MAX_FRAMES = (1 << 32) - 1

Boundary = Literal["crossfade", "blend", "nearest", "hold"]
#: Between the last stored frame of chunk c and the first of chunk c + 1 (fraction f of the way):
#: ``crossfade`` mixes those two stored frames (1 - f, f); ``blend`` evaluates both networks at the instant
#: (each outside its chunk) and mixes them; ``nearest`` evaluates only the chunk whose stored frame is nearer
#: (f < 1/2: chunk c); ``hold`` repeats the nearer stored frame. The first is the default: it was the best
#: of the four on both clips measured (docs/results.md, "Between the samples").
BOUNDARIES: tuple[Boundary, ...] = ("crossfade", "blend", "nearest", "hold")


@dataclass(frozen=True)
class Region:
    """A rectangle of source pixels: ``width x height`` at column ``x``, row ``y`` (FFmpeg's crop=w:h:x:y)."""

    width: int
    height: int
    x: int = 0
    y: int = 0

    @classmethod
    def parse(cls, text: str) -> Region:
        """``W:H:X:Y`` in source pixels; ValueError if malformed."""
        parts = text.split(":")
        if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise ValueError(f"{text!r} is not a crop like W:H:X:Y (e.g. 64:64:32:0)")
        nums = [int(p) for p in parts]
        if nums[0] < 1 or nums[1] < 1:
            raise ValueError(f"{text!r}: crop width and height must be at least 1")
        if nums[2] < 0 or nums[3] < 0:
            raise ValueError(f"{text!r}: crop position must not be negative")
        return cls(*nums)


@dataclass(frozen=True)
class Geometry:
    """Source pixels ``region`` of a ``src_width x src_height`` frame, rendered at ``width x height``."""

    src_width: int
    src_height: int
    region: Region
    width: int
    height: int

    @property
    def identity(self) -> bool:
        """Whether this is the stored frame as it is (eq. 4's positions exactly)."""
        r = self.region
        return (r.x, r.y, r.width, r.height, self.width, self.height) == (
            0, 0, self.src_width, self.src_height, self.src_width, self.src_height)

    def columns(self) -> np.ndarray:
        """Normalised x of every output column (float64)."""
        return axis_positions(self.src_width, self.region.x, self.region.width, self.width)

    def rows(self) -> np.ndarray:
        """Normalised y of every output row (float64)."""
        return axis_positions(self.src_height, self.region.y, self.region.height, self.height)


def axis_positions(n_src: int, start: int, length: int, n_out: int) -> np.ndarray:
    """Normalised positions of ``n_out`` output pixels showing source pixels ``[start, start + length)``.

    ``x_j = 2 (u_j / n_src - 1/2)`` with ``u_j = start + (j + 1/2) length / n_out - 1/2``; ``u_j / n_src`` is
    the single binary64 quotient of the integers ``2 n_out start - n_out + (2j + 1) length`` and
    ``2 n_out n_src``, so that where ``u_j`` is a whole pixel it equals eq. 4's ``i / W`` to the last bit.
    """
    j = np.arange(n_out, dtype=np.int64)
    num = 2 * n_out * start - n_out + (2 * j + 1) * length
    return 2.0 * (num / np.float64(2 * n_out * n_src) - 0.5)


@dataclass(frozen=True)
class TileSpan:
    """The output pixels of a :class:`Geometry` that tile ``tile`` (its number in coded order) draws: columns
    ``[col0, col1)`` and rows ``[row0, row1)``, at the normalised positions ``xs`` and ``ys`` of its network's
    own coordinates (its area's, spec "Tiles"), weighted ``wx[column] * wy[row]`` where the tile is blended with
    a neighbour (None: weight 1 throughout)."""

    tile: int
    col0: int
    col1: int
    row0: int
    row1: int
    xs: np.ndarray
    ys: np.ndarray
    wx: np.ndarray | None = None
    wy: np.ndarray | None = None

    @property
    def blended(self) -> bool:
        return self.wx is not None or self.wy is not None


def tile_spans(geometry: Geometry, tiles: tuple[Tile, ...]) -> list[TileSpan]:
    """The tiles an output geometry touches, each with the output pixels it draws, in coded order.

    Along each axis, an output pixel at source position ``u`` (``axis_positions``) belongs to the tile that
    holds source pixel ``floor(u + 1/2)``, with weight 1; within ``overlap`` pixels of a border between two
    tiles whose networks reach across it (``Tile.margins``) it is blended from both, their weights ramping
    linearly across the ``2 overlap`` pixels and summing to 1 (spec "Tiles"). Each tile draws at its network's
    own normalised position of ``u``: at the stored size and away from the blends, every tile's own pixel grid,
    exactly as it was trained.
    """
    r = geometry.region
    spans = []
    for k, t in enumerate(tiles):
        left, top, right, bottom = t.margins
        ax, ay, aw, ah = t.area
        cols = _axis_share(geometry.width, r.x, r.width, t.x, t.width, left, right)
        rows = _axis_share(geometry.height, r.y, r.height, t.y, t.height, top, bottom)
        if cols is None or rows is None:
            continue
        (c0, c1, wx), (r0, r1, wy) = cols, rows
        xs = axis_positions(aw, r.x - ax, r.width, geometry.width)[c0:c1]
        ys = axis_positions(ah, r.y - ay, r.height, geometry.height)[r0:r1]
        spans.append(TileSpan(k, c0, c1, r0, r1, xs, ys, wx, wy))
    return spans


def _axis_share(n_out: int, start: int, length: int, first: int, size: int, low: int,
                high: int) -> tuple[int, int, np.ndarray | None] | None:
    """The output pixels ``[i0, i1)`` of one axis that a tile of source pixels ``[first, first + size)`` draws,
    and its weight on each (None: all 1), when its network reaches ``low`` pixels before the tile and ``high``
    after it (its overlap with the neighbours there; 0: none, or the frame's edge). None if it draws none.

    Output pixel j sits at source position ``u = q_j / (2 n_out) - 1/2`` with the integer
    ``q_j = 2 n_out start + (2j + 1) length``, so every bound is an exact integer comparison: without overlap
    the tile holds ``floor(u + 1/2)``, i.e. ``2 n_out first <= q_j < 2 n_out (first + size)`` (the nearest rule);
    with it the ramps ``(u - first + low + 1/2) / (2 low)`` and ``(first + size + high - 1/2 - u) / (2 high)``,
    clamped to [0, 1], are above 0 for ``2 n_out (first - low) < q_j < 2 n_out (first + size + high)``.
    """
    j = np.arange(n_out, dtype=np.int64)
    q = 2 * n_out * start + (2 * j + 1) * length
    lo = q > 2 * n_out * (first - low) if low else q >= 2 * n_out * first
    hi = q < 2 * n_out * (first + size + high)
    inside = np.flatnonzero(lo & hi)
    if inside.size == 0:
        return None
    i0, i1 = int(inside[0]), int(inside[-1]) + 1
    if not (low or high):
        return i0, i1, None
    half = q[i0:i1] / np.float64(2 * n_out)  # u + 1/2
    weight = np.ones(i1 - i0)
    if low:
        weight *= np.clip((half - (first - low)) / (2 * low), 0.0, 1.0)
    if high:
        weight *= np.clip((first + size + high - half) / (2 * high), 0.0, 1.0)
    return i0, i1, None if bool(np.all(weight == 1.0)) else weight


def time_position(offset: Fraction, frame_count: int) -> float:
    """Normalised t of the instant ``offset`` frames after a chunk's first frame (eq. 4 at whole frames)."""
    return 2.0 * (offset.numerator / (offset.denominator * frame_count) - 0.5)


def _positive_fraction(text: str, what: str, examples: str) -> Fraction:
    try:
        q = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a {what} like {examples}") from None
    if q <= 0:
        raise ValueError(f"{text!r}: the {what} must be greater than 0")
    return q


def parse_scale(text: str) -> Fraction:
    """A positive scale factor: ``2``, ``0.5``, ``3/2``; ValueError otherwise."""
    return _positive_fraction(text, "scale factor", "2, 0.5 or 3/2")


def parse_rate(text: str) -> Fraction:
    """A positive frame rate: ``60``, ``29.97``, ``30000/1001``; ValueError otherwise."""
    r = _positive_fraction(text, "frame rate", "60, 29.97 or 30000/1001")
    if r.numerator >= 1 << 32 or r.denominator >= 1 << 32:
        r = r.limit_denominator((1 << 32) - 1)
        if r.numerator >= 1 << 32 or r <= 0:
            raise ValueError(f"{text!r}: the frame rate is out of range")
    return r


def plan_geometry(width: int, height: int, *, size: tuple[int, int] | None = None,
                  scale: Fraction | float | None = None,
                  region: Region | tuple[int, ...] | None = None) -> Geometry:
    """Check a requested region and output size against a ``width x height`` stream.

    ``region`` defaults to the whole frame; the output is ``size``, or the region's size times ``scale``
    (rounded, at least 1 pixel), or the region's size. Raises :class:`InvrConfigError` with one line.
    """
    if size is not None and scale is not None:
        raise InvrConfigError("give an output size or a scale factor, not both")
    if region is None:
        reg = Region(width, height)
    else:
        reg = region if isinstance(region, Region) else Region(*region)
    if reg.width < 1 or reg.height < 1 or reg.x < 0 or reg.y < 0:
        raise InvrConfigError(f"crop {_crop_text(reg)}: sizes must be at least 1 and positions at least 0")
    if reg.x + reg.width > width or reg.y + reg.height > height:
        raise InvrConfigError(f"crop {_crop_text(reg)} reaches outside the {width}x{height} frame")
    if size is not None:
        ow, oh = size
    elif scale is not None:
        f = Fraction(scale)
        if f <= 0:
            raise InvrConfigError(f"scale factor {scale}: must be greater than 0")
        ow, oh = (max(1, math.floor(n * f + Fraction(1, 2))) for n in (reg.width, reg.height))
    else:
        ow, oh = reg.width, reg.height
    if not (1 <= ow <= MAX_DIMENSION and 1 <= oh <= MAX_DIMENSION):
        raise InvrConfigError(f"output size {ow}x{oh} is outside 1x1 .. {MAX_DIMENSION}x{MAX_DIMENSION}")
    return Geometry(width, height, reg, ow, oh)


def _crop_text(r: Region) -> str:
    return f"{r.width}:{r.height}:{r.x}:{r.y}"


def output_info(info: StreamInfo, geometry: Geometry, rate: Fraction | None = None,
                frame_count: int | None = None) -> StreamInfo:
    """The stream facts of the output: its size, its rate, and a sample aspect ratio that keeps the
    region's display aspect ratio (as FFmpeg's scale filter does)."""
    r = geometry.region
    sar = info.sample_aspect_ratio
    if (geometry.width, geometry.height) != (r.width, r.height):
        sar = (sar * Fraction(r.width * geometry.height, r.height * geometry.width)).limit_denominator(65535)
    out = replace(info, width=geometry.width, height=geometry.height, sample_aspect_ratio=sar)
    if rate is not None:
        out = replace(out, frame_rate=rate, time_base=1 / rate)
    if frame_count is not None:
        out = replace(out, frame_count=frame_count)
    return out


@dataclass(frozen=True)
class Timeline:
    """Output frames at ``rate`` (None: the stream's own frames) from source frame ``first_frame`` on."""

    src_rate: Fraction
    first_frame: int = 0
    frame_count: int | None = None  # output frames; None: to the end of the stream
    rate: Fraction | None = None
    boundary: Boundary = "crossfade"

    def __post_init__(self) -> None:
        if isinstance(self.rate, float):  # 29.97 means 2997/100, not the nearest binary fraction
            object.__setattr__(self, "rate", Fraction(repr(self.rate)))
        elif self.rate is not None:
            object.__setattr__(self, "rate", Fraction(self.rate))
        if self.boundary not in BOUNDARIES:
            raise InvrConfigError(f"chunk boundary {self.boundary!r}: use one of {', '.join(BOUNDARIES)}")
        if self.rate is not None and Fraction(self.rate) <= 0:
            raise InvrConfigError(f"frame rate {self.rate}: must be greater than 0")
        if self.first_frame < 0 or (self.frame_count is not None and self.frame_count < 0):
            raise InvrConfigError("first frame and frame count must not be negative")

    @property
    def step(self) -> Fraction:
        """Source frames between two output frames."""
        return Fraction(1) if self.rate is None else Fraction(self.src_rate) / Fraction(self.rate)

    def instant(self, n: int) -> Fraction:
        """Source frame position of output frame ``n``."""
        return self.first_frame + n * self.step

    def count(self, total: int) -> int:
        """Output frames for a stream of ``total`` frames: those whose instant falls before its end (so the
        duration is kept, as FFmpeg's fps filter keeps it), at most ``frame_count``."""
        n = max(0, math.ceil((total - self.first_frame) / self.step))
        n = n if self.frame_count is None else min(n, self.frame_count)
        if n > MAX_FRAMES:
            raise InvrConfigError(f"{n} output frames is more than a stream can hold ({MAX_FRAMES})")
        return n

    def source_span(self) -> tuple[int, int | None]:
        """(first frame, frame count) of the source the output needs, one frame of margin for a blend."""
        if self.frame_count is None:
            return self.first_frame, None
        if self.frame_count == 0:
            return self.first_frame, 0
        margin = 1 if self.step.denominator == 1 else 2  # an instant between frames needs the next one
        return self.first_frame, math.floor((self.frame_count - 1) * self.step) + margin


@dataclass(frozen=True)
class Term:
    """One network evaluation that goes into an output frame: chunk ``which`` (0: the current chunk, -1: the
    one before it) at ``offset`` frames after its first frame, weighted ``weight``."""

    which: int
    offset: Fraction
    weight: Fraction = Fraction(1)


def chunk_terms(timeline: Timeline, n0: int, first: int, frames: int, prev_frames: int | None,
                limit: int | None) -> Iterator[tuple[int, tuple[Term, ...]]]:
    """Output frames ``n >= n0`` made with the chunk of source frames ``[first, first + frames)``.

    Those are the instants up to its last frame, including those after the previous chunk's last frame
    (``prev_frames`` is its length, None if there is none or it did not end at ``first``). Yields
    ``(n, terms)`` until the next output frame lies beyond this chunk's last frame or ``n`` reaches ``limit``.
    """
    last = first + frames - 1
    n = n0
    while (limit is None or n < limit) and (s := timeline.instant(n)) <= last:
        if s >= first:
            yield n, (Term(0, s - first),)
        elif prev_frames is not None and s > first - 1:
            yield n, _boundary_terms(timeline.boundary, s - (first - 1), prev_frames)
        else:  # no earlier chunk to move from (not reached by decode_resampled, which starts at a frame)
            yield n, (Term(0, Fraction(0)),)
        n += 1


def _boundary_terms(boundary: Boundary, f: Fraction, prev_frames: int) -> tuple[Term, ...]:
    """Terms of an instant a fraction ``f`` (0 < f < 1) of the way from one chunk's last frame to the
    next's first."""
    before, after = Term(-1, prev_frames - 1 + f), Term(0, f - 1)
    if boundary == "crossfade":
        return Term(-1, Fraction(prev_frames - 1), 1 - f), Term(0, Fraction(0), f)
    if boundary == "blend":
        return replace(before, weight=1 - f), replace(after, weight=f)
    if boundary == "nearest":
        return (before,) if f < Fraction(1, 2) else (after,)
    return (Term(-1, Fraction(prev_frames - 1)),) if f < Fraction(1, 2) else (Term(0, Fraction(0)),)


def tail_terms(timeline: Timeline, n0: int, end: int, last_frames: int,
               limit: int | None) -> Iterator[tuple[int, tuple[Term, ...]]]:
    """Output frames after the last chunk's last frame (instants before ``end``, the stream's end): they hold
    that frame, since there is nothing to move towards."""
    n = n0
    while (limit is None or n < limit) and timeline.instant(n) < end:
        yield n, (Term(-1, Fraction(last_frames - 1)),)
        n += 1
