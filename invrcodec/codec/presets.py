"""Named presets (x264-style speed/quality trade-offs) and the paper's representation variants."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from invrcodec.choices import DEFAULT_CHUNK_FRAMES, DEFAULT_KEYINT, DEFAULT_PRESET
from invrcodec.net.fit import Recipe
from invrcodec.types import EncodingKind, NetworkKind, Representation, TileGrid

__all__ = ["BANDS_BY_QP", "DEFAULT_CHUNK_FRAMES", "DEFAULT_KEYINT", "DEFAULT_PRESET", "PRESETS", "VARIANTS",
           "QpBand", "TILE_OVERLAP", "TILE_SIDE", "auto_tile_grid", "band_for_qp", "band_for_rate",
           "band_limited_dims", "make_variant"]

# Our recipe: random k x m x n pixel grids from the whole chunk, per-axis first-layer tables, Adam with
# cosine decay. Measured against the paper's recipe in tools/bench.py (docs/results.md).
#
# The names and defaults (DEFAULT_PRESET, DEFAULT_CHUNK_FRAMES, DEFAULT_KEYINT) live in invrcodec.choices, which
# the command line reads without importing torch; the tables here are keyed by its names, in its order.
#
# Every preset but paper codes DEFAULT_CHUNK_FRAMES (90) frames per network, six times the paper's 15. A
# 45-frame network first took three 15-frame ones' place with twice their steps (two thirds of the training per
# frame): on the first 45 frames of carphone at 128x128 that moved three 15-frame networks at 0.95 bpp and
# 36.35 dB (QP 38) to one at 0.40 bpp and 35.42 dB (QP 34); with 800 steps the 45-frame network stopped at
# 33.80 dB (docs/results.md, "Rate-distortion"). A 90-frame network then took two 45-frame ones' place with the
# same training per frame (twice the steps; Recipe.frames_knee), BD-rate -24.9% / -14.3% on carphone /
# bigbuckbunny; with the 0.63 exponent's steps instead (1.55x) it was -18.0% / -5.7% (docs/results.md,
# "Frames per network: 90"). The steps below are a 90-frame network's.
PRESETS: dict[str, Recipe] = {
    # ultrafast: Adam 1.5e-3 after a 50-step linear warm-up. Without the warm-up 1.2e-3 already collapses to a
    # flat image (12.8 and 14.5 dB after 1000 steps); with it, 1.5e-3 ends 1.7-2.1 dB above the former 1e-3
    # (1000 steps, first chunks of both clips) and rescued a chunk where 1e-3 stalled at 15 dB (docs/results.md,
    # Speed). That was chosen on carphone and bigbuckbunny over 1,000 steps; fast's longer schedules are
    # below.
    # Two full-chunk PSNR checks per chunk (halfway, to catch a collapsed fit, and at the end): a check renders
    # the whole chunk, as much arithmetic as a few dozen steps on a 45-frame chunk, and without a --psnr target
    # the checks only report (they never change the weights; tests/test_tools_eval.py).
    "ultrafast": Recipe(steps=2000, lr=1.5e-3, warmup=50, batch=8192, grid_frames=15, eval_every=1000,
                        cpu_bf16=True, refine=0.15),
    # fast: the same warm-up and rate, but 1e-3 at QP 38 and finer, where its training doubles (QpBand.lr).
    # fast also trains for the rate at its QP over the last 30% of the steps (Recipe.rate, lambda = 1e5 *
    # step^2): BD-rate -8.6% / -9.8% against the same recipe without it on the first 45 frames of carphone /
    # bigbuckbunny at 128x128, QP 30-46 (docs/results.md, "Rate-aware training"). The other presets were not
    # measured with it and leave it off. Under --psnr its training stops 0.75 dB short of the target, which
    # refinement makes up (Recipe.refine_gain).
    "fast": Recipe(steps=3200, lr=1.5e-3, warmup=50, batch=8192, grid_frames=15, eval_every=1600, compile=True,
                   cpu_bf16=True, refine=0.15, rate=1e5, refine_gain=0.75),
    # medium: the same warm-up and rate; 3000 steps end 1.3-1.7 dB above 1e-3 (40.85 and 41.05 dB).
    "medium": Recipe(steps=12000, lr=1.5e-3, warmup=50, batch=16384, grid_frames=15, eval_every=1000,
                     compile=True, refine=0.1),
    # slow: no warm-up, 5e-4. Over 10,000 steps it ends 1.3 dB above medium (42.13 / 42.40 dB); with the
    # warm-up and 1.5e-3 carphone collapsed to 12.6 dB (docs/results.md, Speed).
    "slow": Recipe(steps=40000, lr=5e-4, batch=16384, grid_frames=15, eval_every=2000, compile=True,
                   refine=0.05),
    # The paper (sec. 3.1.2, 3.3): one whole random frame per step, Adam at 2e-5, 25,000 steps per chunk,
    # the textbook forward pass on memoised encodings.
    "paper": Recipe(steps=25000, lr=2e-5, schedule="constant", batch=0, arithmetic="reference",
                    eval_every=1000, frames_exponent=0.0, lr_width=0),
}


def band_limited_dims(width: int, height: int, frames: int, sigma: float) -> tuple[int, int, int]:
    """Encoding lengths per axis whose frequencies stay at or below the axis' Nyquist rate.

    Eq. 2's k-th frequency is sigma^k * pi on coordinates spaced 2/n apart (eq. 4), so the samples of an axis
    of n values resolve it only while sigma^k <= n / 2; the frequencies above alias to pseudo-random
    features that cost first-layer weights and generalise to nothing between samples. The paper's
    [64, 64, 32] at sigma 1.4 keeps 13, 13 and 6 such frequencies on a 128x128, 15-frame chunk
    (docs/results.md, "Rate-distortion").
    """
    def length(n: int) -> int:
        return 0 if n < 2 else math.floor(math.log(n / 2) / math.log(sigma) + 1e-9) + 1

    return length(width), length(height), length(frames)


# The network follows the QP (issue 11, item 3; issue 24): its width, and below QP 31 its chunk length. At the
# same bytes, a wide network quantised coarsely loses more than a narrower one quantised finely lacks in
# capacity, and a narrow one quantised finely gains less than a wider one quantised coarsely holds. Measured
# with the encoder itself (tools/probe_rd.py --encoder: fast, first 45 frames of each shared clip at 128x128,
# widths 64-192 at QP 30-46; docs/results.md, "The width by the QP"): on both clips each width is on the R-D
# frontier over about four QPs, and outside them below it (hidden 128 at QP 30 under 160 at QP 38: 0.3 dB
# better for 9% / 5% fewer bytes; 128 at QP 46 under 64 at QP 34: 3.1 / 1.3 dB better for 4% / 3% more).
#
# At the widest band the width stops and so would the curve: a finer QP on the same network codes the same
# picture more exactly, but the network's own error, not the quantiser's, bounds it (15-frame chunks at QP 22
# and 30: within 0.3 dB of each other for 36% more bytes, docs/results.md, "Quality that rises with bits"). So
# below that band the chunk shortens instead: more networks per second, each holding fewer frames, and the same
# training per frame (Recipe.for_frames of the band's chunk in a DEFAULT_CHUNK_FRAMES one), so the encode takes
# about as long at every QP of one training (below).
#
# The training follows the QP as well (QpBand.training; issue 24, item 2): the finer the QP, the more of the
# network's own error is left once the quantiser's shrinks, and the more further steps buy. At QP 38 and 34 on
# chaplin and tears_of_steel (128x128, 90 frames, Adam 1e-3), 6,400 steps gained 0.5-1.5 dB over 3,200 for
# 0.3-1.0% more bytes (docs/results.md, "Quality that rises with bits"), so fast trains twice its steps at QP
# 38 and finer, and trains twice as long there. At QP 42 and coarser the preset's steps are kept: the
# quantiser's error dominates there (not measured with more steps).
# That training runs at Adam 1e-3, not the preset's 1.5e-3 (chosen on carphone and bigbuckbunny over 1,000
# steps): on chaplin and tears_of_steel at QP 34 and 38, 1.5e-3 was 0.7-0.9 dB worse for 3-6% more bytes at
# 3,200 steps and fell apart over 6,400 (chaplin climbed to 20.8 dB and fell to 15.4 dB by step 1,400). At QP
# 46 and 3,200 steps 1e-3 was 0.28-0.37 dB worse than 1.5e-3 (carphone, chaplin), so the coarser bands keep it.
#
# A preset listed here takes, for an unset --hidden, the width of the first band whose top QP is at or above its
# QP (None: no top), for an unset --chunk-frames that band's chunk length, and for unset --steps its training;
# not in the presets not measured.
#
# Under --bitrate the QP varies by chunk and the network is the file's, so the encoder takes the first band whose
# network fits a second's share of the bitrate at the band's top QP: its parameters times the bytes a parameter
# cost there, times the chunks per second (the larger of the two clips' in the grid: 0.72 at QP 30 for hidden
# 192, 0.61 at 34 for 160, 0.50 at 38 for 128, 0.41 at 42 for 96).
@dataclass(frozen=True)
class QpBand:
    top_qp: int | None  # the coarsest QP of the band (None: no limit)
    hidden: int
    bytes_per_parameter: float = 0.0  # a coded parameter's bytes at top_qp
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    training: float = 1.0  # the preset's steps and checks times this (issue 24, item 2)
    lr: float | None = None  # the learning rate of that training (None: the preset's; a given --steps keeps it)

    def trained(self, recipe: Recipe) -> Recipe:
        """``recipe`` with the band's training: its steps and check interval times ``training``, at ``lr``."""
        if self.training == 1.0 and self.lr is None:
            return recipe
        return replace(recipe, steps=round(recipe.steps * self.training),
                       eval_every=round(recipe.eval_every * self.training),
                       lr=recipe.lr if self.lr is None else self.lr)


BANDS_BY_QP: dict[str, tuple[QpBand, ...]] = {
    "fast": (QpBand(22, 192, 0.95, 15, training=2.0, lr=1e-3), QpBand(26, 192, 0.85, 30, training=2.0, lr=1e-3),
             QpBand(30, 192, 0.72, 45, training=2.0, lr=1e-3), QpBand(34, 160, 0.61, training=2.0, lr=1e-3),
             QpBand(38, 128, 0.50, training=2.0, lr=1e-3), QpBand(42, 96, 0.41), QpBand(None, 64)),
    # ultrafast (1,000 steps, no rate term): the same grid at QP 34-46 for widths 64-160
    # (docs/width_by_qp_ultrafast.jsonl) has the same frontier on both clips (128 at QP 42 under 96 at QP 38:
    # 0.9 / 0.0 dB better for 17% fewer bytes); 192 was not measured, so 160 is its widest. Its bytes per
    # parameter are a little higher without the rate term.
    "ultrafast": (QpBand(26, 160, 0.85, 30), QpBand(30, 160, 0.72, 45), QpBand(34, 160, 0.61),
                  QpBand(38, 128, 0.51), QpBand(42, 96, 0.42), QpBand(None, 64)),
}


def band_for_qp(preset: str, qp: int) -> QpBand | None:
    """The band ``preset`` gives QP ``qp`` (BANDS_BY_QP), or None where its network does not follow the QP."""
    for band in BANDS_BY_QP.get(preset, ()):
        if band.top_qp is None or qp <= band.top_qp:
            return band
    return None


def band_for_rate(preset: str, bytes_per_second: float, frame_rate: float,
                  parameters: Callable[[QpBand], int]) -> QpBand | None:
    """The first of ``preset``'s bands whose networks (``parameters(band)`` each, one per band.chunk_frames
    frames) fit ``bytes_per_second`` at the band's top QP; None where its network does not follow the rate."""
    for band in BANDS_BY_QP.get(preset, ()):
        chunks_per_second = frame_rate / band.chunk_frames
        if band.top_qp is None or parameters(band) * band.bytes_per_parameter * chunks_per_second \
                <= bytes_per_second:
            return band
    return None


# Tiles (issue 25). Every network, width band and step count above was chosen on 128x128 frames; on a larger
# frame one network spreads the same parameters over more pixels, and the curve stops near 30 dB at 320x240
# whatever the QP. So a larger frame is cut into tiles of about TILE_SIDE pixels a side, each with its own
# network of the band's size: the parameters, the bytes and the training grow with the area, and every tile
# sees what the presets were chosen on. An axis of n pixels takes round(n / TILE_SIDE) tiles (at least one) of
# equal size, the last taking what remains, so a tile side lies between 2/3 and 4/3 of TILE_SIDE once there
# are two or more: 176 stays one tile, 320 becomes three of 107, 720 six of 120, 1080 eight of 135.
TILE_SIDE = 128
# Pixels a tile's network reaches into each neighbour (TileGrid.overlap), blended there by the decoder. A
# network fits its area's edges worst: without overlap the pixels beside a border were 0.9-2.2 dB below their
# neighbours 4-11 px away. With 2 they are within 0.32 dB below to 1.29 above them, for 0.02 dB less on the
# frame; 4 cost 0.18 dB on the frame (its networks cover 6% more pixels each) for no better seam (256x256, 45
# frames, fast QP 30 and 38 on three clips; docs/results.md, "Tile seams").
TILE_OVERLAP = 2


def auto_tile_grid(width: int, height: int, side: int = TILE_SIDE) -> TileGrid | None:
    """The tiles of a ``width x height`` frame (see TILE_SIDE); None where it is one tile."""
    def axis(n: int) -> int:
        count = max(1, math.floor(n / side + 0.5))
        return -(-n // count)

    tile = axis(width), axis(height)
    return None if tile == (width, height) else TileGrid(*tile)


# Paper sec. 3.3: INVR [64, 64, 32]; INVR-Even [52, 52, 52]; INVR-None; INVR-Gaussian (eq. 3, sigma 0.003);
# ReLU-Sin (ReLU MLP on the INVR encoding).
VARIANTS: dict[str, Representation] = {
    "invr": Representation(),
    "even": Representation(enc_dims=(52, 52, 52)),
    "none": Representation(encoding=EncodingKind.NONE, enc_dims=(0, 0, 0)),
    "gaussian": Representation(encoding=EncodingKind.GAUSSIAN, sigma=0.003),
    "relu": Representation(network=NetworkKind.RELU),
}


def make_variant(name: str, **overrides: object) -> Representation:
    """The representation of a named variant with optional field overrides (None values ignored)."""
    rep = VARIANTS[name]
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(rep, **changes) if changes else rep
