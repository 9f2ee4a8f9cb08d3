"""Train once, code many: one clip coded at several operating points (QPs, coders) of one training.

Every key chunk is trained once and coded for every point; every P-chunk is trained per point, because its
reference (the chunk before, as that point coded it) depends on the point. Where the recipe trains for the
rate at the QP (``Recipe.rate``), a key chunk's training depends on the QP too, and is done once per QP.
Each point's packets are byte for byte what :class:`~invrcodec.codec.encoder.Encoder` writes with its config on
the CPU (tests/test_tools_eval.py): the chunks go through the encoder's own ``train_chunks``,
``code_chunks`` and ``run_jobs``. ``tools/rd.py`` draws its INVR curves this way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.codec.jobs import ChunkJob, Reference
from invrcodec.net.fit import FitResult
from invrcodec.types import Header, Packet, Prediction, StreamInfo

__all__ = ["Ladder", "Rung", "encode_ladder", "training_key"]


@dataclass
class Rung:
    """One operating point's encode: the config the encoder resolved, its header and its packets."""

    config: EncoderConfig
    header: Header | None = None
    packets: list[Packet] = field(default_factory=list)
    code_seconds: float = 0.0  # weight coding and the encoder's PSNR render (P-chunks: their training too)


@dataclass
class Ladder:
    """The points in the order given, the key chunks' shared training time and their fit results."""

    rungs: list[Rung]
    train_seconds: float = 0.0
    fits: list[FitResult] = field(default_factory=list)


def training_key(cfg: EncoderConfig) -> tuple[object, ...]:
    """What the points of one training share: equal keys, one training (a QP's own rate aside)."""
    # Refinement happens while coding (Encoder.code_chunks), after the shared training: it may differ per point.
    return (cfg.representation, replace(cfg.recipe, refine=0.0, refine_lr=0.0), cfg.keyint, cfg.seed, cfg.psnr,
            cfg.device, cfg.amp)


def _trained_at(enc: Encoder) -> int | None:
    """The QP a key chunk's training depends on (rate-aware training, ``Recipe.rate``), or None."""
    return None if enc.rate_target(enc.config.recipe) is None else enc.config.qp


def encode_ladder(frames: np.ndarray, info: StreamInfo, configs: Sequence[EncoderConfig],
                  log: Callable[[str], None] | None = None) -> Ladder:
    """Encode ``frames`` (uint8 ``(n, H, W, 3)``) of stream ``info`` at every config, training each key chunk
    once. All configs must share the representation, recipe, keyint, seed and PSNR target (only coder, QP and
    refinement may differ): ValueError otherwise. ``log`` gets a line per key-chunk training. A tiled stream's
    points are encoded one by one (its chunks train inside ``run_jobs``)."""
    encoders = [Encoder(info, cfg) for cfg in configs]
    ladder = Ladder([Rung(encoder.config) for encoder in encoders])
    if not encoders:
        return ladder
    if len({training_key(e.config) for e in encoders}) != 1:
        raise ValueError("points of one training must differ only in coder and QP")
    references: list[Reference | None] = [None] * len(encoders)
    chunk_frames = encoders[0].config.representation.chunk_frames
    # A tiled chunk's networks are trained inside run_jobs, tile by tile: each point trains its own.
    shared = encoders[0].tile_count == 1
    for index, first in enumerate(range(0, len(frames), chunk_frames)):
        job = ChunkJob(index, first, frames[first:first + chunk_frames], encoders[0].prediction_of(index))
        key = job.prediction == Prediction.KEY
        trained = _train_key_chunk(ladder, encoders, job, log) if key and shared else {}
        for i, (rung, encoder) in enumerate(zip(ladder.rungs, encoders)):
            t0 = time.perf_counter()
            fit = trained.get(_trained_at(encoder))
            if fit is not None:
                (packet, recon), = encoder.code_chunks([job], [fit.state], [None], fits=[fit])
                references[i] = (recon,)
            else:
                (packet, references[i]), = encoder.run_jobs([job], [references[i]])
            rung.code_seconds += time.perf_counter() - t0
            rung.packets.append(packet)
    for rung, encoder in zip(ladder.rungs, encoders):
        rung.header = encoder.header
    return ladder


def _train_key_chunk(ladder: Ladder, encoders: list[Encoder], job: ChunkJob,
                     log: Callable[[str], None] | None) -> dict[int | None, FitResult]:
    """Key chunk ``job`` trained once for every QP its points' training depends on (once when none does)."""
    trained: dict[int | None, FitResult] = {}
    for encoder in encoders:
        at = _trained_at(encoder)
        if at in trained:
            continue
        t0 = time.perf_counter()
        trained[at], = encoder.train_chunks([job], [None])
        ladder.train_seconds += time.perf_counter() - t0
        fit = trained[at]
        ladder.fits.append(fit)
        if log is not None:
            last = job.first_frame + len(job.frames) - 1
            log(f"  chunk {job.index}: frames {job.first_frame}-{last}, {fit.steps} steps, {fit.seconds:.1f} s, "
                f"float PSNR {fit.psnr:.2f} dB" + ("" if at is None else f" (for QP {at})"))
    return trained
