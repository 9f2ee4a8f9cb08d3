"""INVR through real files, and fits compiled at once for timings.

Nothing here changes how invrcodec encodes. :func:`encode_invr_points` writes the points of one training
through the encoder's train-once-code-many API (:func:`invrcodec.codec.ladder.encode_ladder`: key chunks
trained once, P-chunks per point), every file byte for byte the one
:class:`invrcodec.codec.encoder.Encoder` writes with the same config (tests/test_tools_eval.py checks this);
:func:`encode_with_encoder` is one full encode per point; :func:`decode_invr_psnr` scores a file's decoded
frames.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import invrcodec
from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.codec.ladder import encode_ladder, training_key
from invrcodec.metrics import rgb_psnr
from invrcodec.net.fit import FitProgress, FitResult
from invrcodec.types import Packet, Prediction, StreamInfo


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
    (presets.BANDS_BY_QP) has one training per band (its width, chunk length and steps).

    Returns the points (with the configs the encoder resolved), the training wall time of the key chunks
    (all representations) and the key chunks' fit results.
    """
    groups: dict[object, list[int]] = {}
    for i, (_, cfg, _) in enumerate(points):
        groups.setdefault(training_key(cfg), []).append(i)
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
