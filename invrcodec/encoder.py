"""Encoding: frames -> one trained, weight-coded network per chunk of N frames (paper sec. 3.1).

PyAV's verbs: ``encode(frame)`` buffers a frame and returns the packets completed by it (one per chunk),
``encode(None)`` flushes the last, possibly shorter, chunk. Only one chunk of frames is held at a time, so
memory does not grow with the video's length. The encoder never packs container bytes: packets go to the
muxer (:func:`invrcodec.open`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from invrcodec import __version__, deepcabac
from invrcodec.decoder import build_network, render, resolve_device
from invrcodec.errors import InvrConfigError, InvrMediaError
from invrcodec.fit import FitProgress, Recipe, fit_chunk, rgb_psnr
from invrcodec.format import LIMITS
from invrcodec.presets import DEFAULT_PRESET, PRESETS, VARIANTS, make_variant
from invrcodec.types import (
    CodedTensor,
    CoderKind,
    CoderParams,
    EncodingKind,
    Header,
    Metadata,
    Packet,
    Representation,
    StreamInfo,
)
from invrcodec.weights import QP_ORIGIN, encode_weights, qp_plan

log = logging.getLogger(__name__)

CODERS = {"deepcabac": CoderKind.DEEPCABAC, "raw32": CoderKind.RAW_FLOAT32, "raw16": CoderKind.RAW_FLOAT16}
DEFAULT_QP = 38
MAX_CHUNK_PARAMETERS = LIMITS["max_parameters"]


@dataclass(frozen=True)
class EncoderConfig:
    """Every encoder setting; build one with :meth:`from_preset`."""

    preset: str = DEFAULT_PRESET
    representation: Representation = field(default_factory=Representation)
    recipe: Recipe = PRESETS[DEFAULT_PRESET]
    coder: CoderKind = CoderKind.DEEPCABAC
    qp: int = DEFAULT_QP  # user QP: larger is coarser; nncodec QP = qp - 80 for the activated layers
    dependent_quantization: bool = True  # trellis quantisation: ~0.7 dB better at equal size (qpsweep)
    psnr: float | None = None  # stop a chunk's training once its PSNR reaches this (dB)
    device: str = "auto"
    seed: int = 0
    amp: bool | None = None  # mixed precision; None = CUDA float16 always, CPU bfloat16 per recipe.cpu_bf16

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, *, variant: str = "invr", psnr: float | None = None,
                    qp: int | None = None, chunk_frames: int | None = None,
                    enc_dims: tuple[int, int, int] | None = None, hidden: int | None = None,
                    layers: int | None = None, steps: int | None = None, device: str = "auto", seed: int = 0,
                    coder: str = "deepcabac", dependent_quantization: bool = True,
                    lr: float | None = None) -> EncoderConfig:
        """A config from a named preset and variant; ``None`` keeps the preset's value."""
        if preset not in PRESETS:
            raise InvrConfigError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        if variant not in VARIANTS:
            raise InvrConfigError(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})")
        if coder not in CODERS:
            raise InvrConfigError(f"unknown coder {coder!r} (choose from {', '.join(CODERS)})")
        rep = make_variant(variant, chunk_frames=chunk_frames, enc_dims=enc_dims, hidden=hidden,
                                   layers=layers)
        recipe = PRESETS[preset]
        if steps is not None:
            recipe = replace(recipe, steps=steps)
        if lr is not None:
            recipe = replace(recipe, lr=lr)
        cfg = cls(preset=preset, representation=rep, recipe=recipe, coder=CODERS[coder],
                  qp=DEFAULT_QP if qp is None else qp, dependent_quantization=dependent_quantization,
                  psnr=psnr, device=device, seed=seed)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        rep, r = self.representation, self.recipe
        checks = [
            (1 <= rep.chunk_frames <= 65535, "chunk frames must be 1..65535"),
            (1 <= rep.hidden <= 4096, "hidden width must be 1..4096"),
            (1 <= rep.layers <= 64, "layers must be 1..64"),
            (all(0 <= d <= 1024 for d in rep.enc_dims), "encoding dimensions must be 0..1024"),
            (rep.encoding == EncodingKind.NONE or any(rep.enc_dims), "encoding dimensions are all zero"),
            (r.steps >= 1, "steps must be at least 1"),
            (r.lr > 0, "learning rate must be positive"),
            (0 <= self.qp <= 160, "qp must be 0..160"),
            (rep.parameter_count <= MAX_CHUNK_PARAMETERS,
             f"network of {rep.parameter_count} parameters exceeds the format's {MAX_CHUNK_PARAMETERS}"),
            (self.psnr is None or 0 < self.psnr < 100, "psnr target must be between 0 and 100 dB"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvrConfigError(message)

    def coder_params(self) -> CoderParams:
        if self.coder == CoderKind.DEEPCABAC:
            return CoderParams(CoderKind.DEEPCABAC, 2, self.dependent_quantization, 10, deepcabac.version())
        return CoderParams(self.coder, 0, False, 0, "")

    def settings(self) -> str:
        """x264-style settings string recorded in the file's metadata."""
        rep, r = self.representation, self.recipe
        parts = {
            "preset": self.preset, "network": rep.network.name.lower(), "hidden": rep.hidden,
            "layers": rep.layers, "w0": rep.w0, "encoding": rep.encoding.name.lower(),
            "enc_dims": ",".join(map(str, rep.enc_dims)), "sigma": rep.sigma, "chunk_frames": rep.chunk_frames,
            "steps": r.steps, "lr": r.lr, "warmup": r.warmup_steps, "schedule": r.schedule,
            "batch": r.batch, "l1": r.l1,
            "arithmetic": r.arithmetic, "cpu_bf16": int(r.cpu_bf16), "refine": r.refine,
            "coder": self.coder.name.lower(), "qp": self.qp,
            "dq": int(self.dependent_quantization), "psnr": self.psnr if self.psnr is not None else "off",
            "seed": self.seed,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())


@dataclass(frozen=True)
class TrainProgress:
    """Progress of the chunk being trained, for a progress display."""

    chunk: int
    first_frame: int
    frame_count: int
    step: int
    steps: int
    psnr: float
    elapsed: float  # seconds spent on this chunk


class Encoder:
    """Turns RGB frames (uint8 ``(H, W, 3)``) into packets, one per chunk of ``chunk_frames`` frames."""

    def __init__(self, stream: StreamInfo, config: EncoderConfig | None = None,
                 progress: Callable[[TrainProgress], None] | None = None) -> None:
        self.config = config or EncoderConfig()
        self.config.validate()
        if stream.width < 1 or stream.height < 1:
            raise InvrMediaError(f"frame size {stream.width}x{stream.height} is empty")
        if stream.width > 16384 or stream.height > 16384:
            raise InvrMediaError(f"frame size {stream.width}x{stream.height} exceeds 16384x16384")
        self.stream = stream
        self.device = resolve_device(self.config.device)
        self.progress = progress
        self._buffer: list[np.ndarray] = []
        self._chunk = 0
        self._frames_done = 0
        self.header = Header(stream, self.config.representation, self.config.coder_params(),
                             Metadata(f"invrcodec {__version__}", self.config.settings()))

    @property
    def frames_encoded(self) -> int:
        return self._frames_done

    def encode(self, frame: np.ndarray | None) -> list[Packet]:
        """Add one frame (or flush with ``None``); return the packets completed."""
        if frame is None:
            return [self._encode_chunk()] if self._buffer else []
        s = self.stream
        if frame.dtype != np.uint8 or frame.shape != (s.height, s.width, 3):
            raise InvrMediaError(
                f"frame {self._frames_done + len(self._buffer)}: expected uint8 ({s.height}, {s.width}, 3), "
                f"got {frame.dtype} {tuple(frame.shape)}")
        self._buffer.append(frame)
        if len(self._buffer) == self.config.representation.chunk_frames:
            return [self._encode_chunk()]
        return []

    def _encode_chunk(self) -> Packet:
        frames = np.stack(self._buffer)
        self._buffer = []
        cfg = self.config
        first, index = self._frames_done, self._chunk

        def report(p: FitProgress) -> None:
            if self.progress:
                self.progress(TrainProgress(index, first, len(frames), p.step, p.steps, p.psnr, p.elapsed))

        fit = fit_chunk(frames, cfg.representation, cfg.recipe, device=self.device, seed=cfg.seed + index,
                        psnr_target=cfg.psnr, amp=cfg.amp, progress=report)
        packet = self.pack(frames, fit.state, index, first)
        log.info("chunk %d: frames %d-%d, %d steps in %.1f s, PSNR %.2f dB trained, %.2f dB coded, %d bytes",
                 index, first, first + len(frames) - 1, fit.steps, fit.seconds, fit.psnr, packet.train_psnr,
                 packet.size)
        self._chunk += 1
        self._frames_done += len(frames)
        return packet

    def pack(self, frames: np.ndarray, state: dict[str, np.ndarray], index: int, first: int) -> Packet:
        """The packet of a trained chunk: its coded weights and the PSNR a decoder of them will see."""
        tensors, recon = self._code(frames, state, index)
        net = build_network(self.config.representation, recon, self.device)
        decoded = render(net, (len(frames), self.stream.height, self.stream.width))
        return Packet(index, first, len(frames), tensors, rgb_psnr(decoded, frames))

    def _code(self, frames: np.ndarray, state: dict[str, np.ndarray],
              index: int) -> tuple[tuple[CodedTensor, ...], dict[str, np.ndarray]]:
        """Code a trained chunk's weights; with ``recipe.refine``, in stages with refinement between.

        Stages: the first layer's weights (the most sensitive tensor and nearly half the parameters), then the
        other activated layers' weights, then the biases and the output layer. After each stage but the last,
        the tensors not coded yet are trained with the coded ones frozen at their decoded values, so they
        absorb the quantisation error. The bytes of every stage are kept as coded: the decoder's weights stay
        exactly the encoder's reconstruction.
        """
        cfg, rep, coder = self.config, self.config.representation, self.header.coder
        if cfg.coder != CoderKind.DEEPCABAC:
            return encode_weights(state, rep, coder, None)
        plan = qp_plan(cfg.qp, rep)
        refine_steps = round(cfg.recipe.refine * cfg.recipe.steps)
        if refine_steps <= 0:
            return encode_weights(state, rep, coder, plan)
        names = [name for name, _ in rep.tensor_shapes()]
        hidden = [n for n in names if n.startswith("layers.") and n.endswith(".weight") and n != "layers.0.weight"]
        stages = [["layers.0.weight"], hidden, [n for n in names if n != "layers.0.weight" and n not in hidden]]
        stages = [s for s in stages if s]
        refine = replace(cfg.recipe, steps=refine_steps, lr=cfg.recipe.refine_lr, warmup=0,
                         eval_every=refine_steps)
        coded: dict[str, CodedTensor] = {}
        recon: dict[str, np.ndarray] = {}
        for i, stage in enumerate(stages):
            if i > 0:
                state = fit_chunk(frames, rep, refine, device=self.device, seed=cfg.seed + index + 1000 * i,
                                  amp=cfg.amp, init=state, frozen=recon).state
            tensors, values = encode_weights(state, rep, coder, plan, names=stage)
            coded.update(zip([n for n in names if n in stage], tensors))
            recon.update(values)
        return tuple(coded[n] for n in names), recon


__all__ = ["CODERS", "DEFAULT_QP", "QP_ORIGIN", "Encoder", "EncoderConfig", "TrainProgress"]
