"""Encoding: frames -> one trained, weight-coded network per chunk of N frames (paper sec. 3.1).

PyAV's verbs: ``encode(frame)`` buffers a frame and returns the packets completed by it (one per chunk),
``encode(None)`` flushes the last, possibly shorter, chunk. Only one chunk of frames is held at a time, so
memory does not grow with the video's length. The encoder never packs container bytes: packets go to the
muxer (:func:`invrcodec.open`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from invrcodec.coding import deepcabac
from invrcodec.clock import PhaseClock
from invrcodec.codec.decoder import build_network, render
from invrcodec.net.devices import resolve_device
from invrcodec.errors import InvrConfigError, InvrEncodeError, InvrMediaError
from invrcodec.codec.executors import BatchedExecutor, Executor, InProcessExecutor, NoExecutor
from invrcodec.codec.jobs import ChunkJob, GopJob, Reference, TileWork, TrainProgress, Weights
from invrcodec.net.fit import COLLAPSE_MARGIN_DB, FitProgress, FitResult, Recipe, collapse_floor, fit_chunks, watch_from
from invrcodec.format.structs import LIMITS
from invrcodec.format.structs import chunk_overhead as format_chunk_overhead
from invrcodec.metrics import pooled_psnr, rgb_psnr
from invrcodec.codec.presets import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_KEYINT,
    DEFAULT_PRESET,
    PRESETS,
    VARIANTS,
    TILE_OVERLAP,
    QpBand,
    band_for_qp,
    band_for_rate,
    auto_tile_grid,
    band_limited_dims,
    make_variant,
)
from invrcodec.coding.ratecontrol import RateControl, choose_qp
from invrcodec.coding.ratemodel import RateTarget, rate_target
from invrcodec.types import (
    CodedTensor,
    CoderKind,
    CoderParams,
    EncodingKind,
    Header,
    Metadata,
    Packet,
    Prediction,
    Representation,
    StreamInfo,
    TensorRole,
    Tile,
    TileGrid,
)
from invrcodec.coding.weights import QP_ORIGIN, encode_weights, qp_plan
from invrcodec.version import __version__

log = logging.getLogger(__name__)

CODERS = {"deepcabac": CoderKind.DEEPCABAC, "raw32": CoderKind.RAW_FLOAT32, "raw16": CoderKind.RAW_FLOAT16}
DEFAULT_QP = 38
# What this encoder accepts, in one table: what a file may hold (format.LIMITS), tighter where the encoder
# chooses to be (a width or encoding length this far beyond the presets' 128 and 64 is a mistake; a chunk of
# frames over 16384 pixels a side does not fit in training memory). min() keeps every entry within the
# format's, so the encoder cannot accept what a file cannot hold; tests/test_codec.py checks the table.
ENCODER_LIMITS: dict[str, int] = {
    "max_dimension": min(16384, LIMITS["max_dimension"]),  # width, height
    "max_hidden": min(4096, LIMITS["max_hidden"]),
    "max_layers": LIMITS["max_layers"],
    "max_enc_dim": min(1024, LIMITS["max_enc_dim"]),  # each of l_x, l_y, l_t
    "max_chunk_frames": LIMITS["max_chunk_frames"],
    "max_parameters": LIMITS["max_parameters"],
    "max_tiles": min(4096, LIMITS["max_tiles"]),  # tiles of a frame: a 16384x16384 frame in tiles of 256x256
}


@dataclass(frozen=True)
class EncoderConfig:
    """Every encoder setting; build one with :meth:`from_preset`."""

    preset: str = DEFAULT_PRESET
    representation: Representation = field(default_factory=Representation)
    recipe: Recipe = PRESETS[DEFAULT_PRESET]
    coder: CoderKind = CoderKind.DEEPCABAC
    qp: int = DEFAULT_QP  # user QP: larger is coarser; nncodec QP = qp - 80 for the activated layers
    dependent_quantization: bool = True  # trellis quantisation: ~0.7 dB better at equal size (qpsweep)
    psnr: float | None = None  # the PSNR (dB) a chunk trains to, refinement's gain included (psnr_stop)
    bitrate: float | None = None  # kbit/s over the clip: a QP per chunk (invrcodec.coding.ratecontrol) instead of qp
    device: str = "auto"
    seed: int = 0
    amp: bool | None = None  # mixed precision; None = CUDA float16 always, CPU bfloat16 per recipe.cpu_bf16
    # Chunks trained at once (one INVRBatch); 0 = auto: as many as fit on a CUDA device (up to
    # AUTO_PARALLEL_CAP), one at a time on the CPU. Memory grows with it, not with the video's length.
    parallel_chunks: int = 0
    # A key chunk every keyint chunks (and the first); the others are P-chunks, coded as the residual to the
    # chunk before them (spec "Prediction"). 1 = every chunk a key chunk (the paper's coding).
    keyint: int = DEFAULT_KEYINT
    # Encoding frequencies chosen per stream: each axis up to its Nyquist rate (presets.band_limited_dims),
    # replacing representation.enc_dims once the frame size is known.
    band_limit: bool = True
    # Under --bitrate, the network (width and chunk length) and its training chosen per stream from a second's
    # share of the bitrate (presets.band_for_rate), replacing representation.hidden and chunk_frames and the
    # recipe's steps once the frame rate is known: those of "hidden", "chunk_frames" and "steps" the user left
    # unset (the ones given are kept).
    band_by_rate: frozenset[str] = frozenset()
    # Tiles (presets.TILE_SIDE): "auto" cuts a frame larger than the presets' 128x128 into tiles of about that
    # size once the frame size is known, (w, h) into tiles of w x h pixels, "none" never; the encoder keeps
    # (w, h) or "none" (one network per chunk for the whole frame).
    tile: tuple[int, int] | str = "none"
    # Pixels each tile's network reaches into its neighbours, where a decoder blends the two (spec "Tiles"):
    # None picks presets.TILE_OVERLAP, at most what the tiles allow (TileGrid.overlap_fits); the encoder
    # keeps the number. Unused without tiles.
    overlap: int | None = None

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, *, variant: str = "invr", psnr: float | None = None,
                    qp: int | None = None, chunk_frames: int | None = None,
                    enc_dims: tuple[int, int, int] | None = None, hidden: int | None = None,
                    layers: int | None = None, steps: int | None = None, device: str = "auto", seed: int = 0,
                    coder: str = "deepcabac", dependent_quantization: bool = True,
                    lr: float | None = None, parallel_chunks: int = 0,
                    keyint: int | None = None, bitrate: float | None = None,
                    tile: tuple[int, int] | str | None = None, overlap: int | None = None) -> EncoderConfig:
        """A config from a named preset and variant; ``None`` keeps the preset's value.

        Every preset but ``paper`` band-limits the encoding of the ``invr`` variant to the frame size unless
        ``enc_dims`` is given, predicts chunks from chunks (``keyint``) and tiles a large frame (``tile``:
        "auto" unless given); ``paper`` is the paper's coding: its encoding dimensions, every chunk a key chunk,
        one network for the whole frame.
        """
        if preset not in PRESETS:
            raise InvrConfigError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        if variant not in VARIANTS:
            raise InvrConfigError(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})")
        if coder not in CODERS:
            raise InvrConfigError(f"unknown coder {coder!r} (choose from {', '.join(CODERS)})")
        paper = preset == "paper"
        # The network and its training follow the QP where the preset measured them (presets.BANDS_BY_QP): what
        # the user left unset of the width, the chunk length and the steps; under --bitrate, per stream (Encoder).
        band = band_for_qp(preset, DEFAULT_QP if qp is None else qp) if variant == "invr" else None
        unset = frozenset(name for name, given in (("hidden", hidden), ("chunk_frames", chunk_frames),
                                                   ("steps", steps)) if given is None)
        recipe = PRESETS[preset]
        if band is not None and bitrate is None:
            hidden = band.hidden if hidden is None else hidden
            chunk_frames = band.chunk_frames if chunk_frames is None else chunk_frames
            recipe = band.trained(recipe) if steps is None else recipe
        if chunk_frames is None and not paper:
            chunk_frames = DEFAULT_CHUNK_FRAMES
        rep = make_variant(variant, chunk_frames=chunk_frames, enc_dims=enc_dims, hidden=hidden,
                                   layers=layers)
        # A preset's steps are a DEFAULT_CHUNK_FRAMES network's; a shorter chunk gets the same training per
        # frame (Recipe.for_frames; the paper's recipe is per chunk of any length).
        recipe = recipe.for_frames(rep.chunk_frames, DEFAULT_CHUNK_FRAMES)
        if steps is not None:  # taken as given, for chunks of any length
            recipe = replace(recipe, steps=steps, frames_exponent=0.0)
        if lr is not None:
            recipe = replace(recipe, lr=lr)
        if keyint is None:
            keyint = 1 if paper else DEFAULT_KEYINT
        cfg = cls(preset=preset, representation=rep, recipe=recipe, coder=CODERS[coder],
                  qp=DEFAULT_QP if qp is None else qp, dependent_quantization=dependent_quantization,
                  psnr=psnr, bitrate=bitrate, device=device, seed=seed, parallel_chunks=parallel_chunks,
                  keyint=keyint, tile=("none" if paper else "auto") if tile is None else tile, overlap=overlap,
                  band_limit=not paper and variant == "invr" and enc_dims is None,
                  band_by_rate=unset if band is not None and bitrate is not None else frozenset())
        cfg.validate()
        return cfg

    def validate(self) -> None:
        rep, r, lim = self.representation, self.recipe, ENCODER_LIMITS
        checks = [
            (1 <= rep.chunk_frames <= lim["max_chunk_frames"],
             f"chunk frames must be 1..{lim['max_chunk_frames']}"),
            (1 <= rep.hidden <= lim["max_hidden"], f"hidden width must be 1..{lim['max_hidden']}"),
            (1 <= rep.layers <= lim["max_layers"], f"layers must be 1..{lim['max_layers']}"),
            (all(0 <= d <= lim["max_enc_dim"] for d in rep.enc_dims),
             f"encoding dimensions must be 0..{lim['max_enc_dim']}"),
            (rep.encoding == EncodingKind.NONE or any(rep.enc_dims), "encoding dimensions are all zero"),
            (r.steps >= 1, "steps must be at least 1"),
            (r.lr > 0, "learning rate must be positive"),
            (0 <= self.qp <= 160, "qp must be 0..160"),
            (rep.parameter_count <= lim["max_parameters"],
             f"network of {rep.parameter_count} parameters exceeds the format's {lim['max_parameters']}"),
            (self.psnr is None or 0 < self.psnr < 100, "psnr target must be between 0 and 100 dB"),
            (0 <= self.parallel_chunks <= 4096, "parallel chunks must be 0..4096"),
            (self.keyint >= 0, "keyint must be >= 0 (0: only the first chunk is a key chunk)"),
            (self.bitrate is None or 0 < self.bitrate < 1e7, "bitrate must be a positive kbit/s value"),
            (self.bitrate is None or self.coder == CoderKind.DEEPCABAC, "bitrate needs the deepcabac coder"),
            (self.tile in ("auto", "none") or (isinstance(self.tile, tuple) and len(self.tile) == 2 and all(
                isinstance(n, int) and 1 <= n <= lim["max_dimension"] for n in self.tile)),
             f"tile must be auto, none or WxH with sides 1..{lim['max_dimension']}"),
            (self.overlap is None or 0 <= self.overlap <= lim["max_dimension"],
             f"tile overlap must be 0..{lim['max_dimension']}"),
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
            "steps": r.steps, "lr": r.lr, "lr_width": r.lr_width, "warmup": r.warmup_steps,
            "schedule": r.schedule, "batch": r.batch, "l1": r.l1,
            "arithmetic": r.arithmetic, "cpu_bf16": int(r.cpu_bf16), "refine": r.refine,
            "coder": self.coder.name.lower(), "qp": self.qp if self.bitrate is None else "auto",
            "bitrate": self.bitrate if self.bitrate is not None else "off",
            "dq": int(self.dependent_quantization), "psnr": self.psnr if self.psnr is not None else "off",
            "seed": self.seed, "keyint": self.keyint if self.keyint else "infinite",
            "p_steps": r.p_steps, "p_lr": r.p_lr, "p_l1": r.p_l1, "p_train": r.p_train,
            **({"rate": r.rate, "rate_span": r.rate_span} if r.rate else {}),
            **({"tile": "x".join(map(str, self.tile)), "overlap": self.overlap} if isinstance(self.tile, tuple)
               else {}),
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())


class Encoder:
    """Turns RGB frames (uint8 ``(H, W, 3)``) into packets, one per chunk of ``chunk_frames`` frames."""

    def __init__(self, stream: StreamInfo, config: EncoderConfig | None = None,
                 progress: Callable[[TrainProgress], None] | None = None,
                 executor: Executor | None = None) -> None:
        self.config = config or EncoderConfig()
        self.config.validate()
        if stream.width < 1 or stream.height < 1:
            raise InvrMediaError(f"frame size {stream.width}x{stream.height} is empty")
        side = ENCODER_LIMITS["max_dimension"]
        if stream.width > side or stream.height > side:
            raise InvrMediaError(f"frame size {stream.width}x{stream.height} exceeds {side}x{side}")
        self.stream = stream
        self.tiles = self._tile_grid(self.config.tile, self.config.overlap)
        self.config = replace(self.config, tile=(self.tiles.tile_width, self.tiles.tile_height) if self.tiles
                              else "none", overlap=self.tiles.overlap if self.tiles else 0)
        if self.config.band_by_rate and self.config.bitrate is not None:
            self.config = self._network_for_rate(self.config)
        if self.config.band_limit:
            self.config = replace(self.config, representation=self._band_limited(self.config.representation),
                                  band_limit=False)
        self.device = resolve_device(self.config.device)
        self.parallel = self.config.parallel_chunks or auto_parallel_chunks(self.config, stream, self.device)
        self.progress = progress
        self._buffer: list[np.ndarray] = []
        self._chunk = 0  # index of the next chunk to cut
        self._frames_in = 0  # its first frame
        self._frames_done = 0  # frames of the packets returned
        self._start_reference: dict[str, np.ndarray] | None = None  # of the first chunk after resume_at()
        self._rate = None if self.config.bitrate is None else RateControl(self.config.bitrate, stream.frame_rate)
        self.header = Header(stream, self.config.representation, self.config.coder_params(),
                             Metadata(f"invrcodec {__version__}", self.config.settings()), self.tiles)
        if executor is None:
            executor = BatchedExecutor(self.parallel) if self.parallel > 1 else InProcessExecutor()
        self.executor = executor  # where the chunks train (invrcodec.codec.executors)
        self.clock = PhaseClock()  # where this process's encoding time went (chunks trained elsewhere: not here)
        executor.bind(self, job_runner)

    def _tile_grid(self, tile: tuple[int, int] | str, overlap: int | None) -> TileGrid | None:
        """The stream's tiles for the config's ``tile`` and ``overlap``; None where one network covers the
        frame. An overlap the tiles cannot hold is refused when given, lowered to fit when automatic."""
        s = self.stream
        if tile == "none":
            return None
        if tile == "auto":
            grid = auto_tile_grid(s.width, s.height)
        else:
            assert isinstance(tile, tuple)
            w, h = min(tile[0], s.width), min(tile[1], s.height)
            grid = None if (w, h) == (s.width, s.height) else TileGrid(w, h)
        if grid is None:
            return None
        if grid.count(s.width, s.height) > ENCODER_LIMITS["max_tiles"]:
            raise InvrConfigError(f"tiles of {grid.tile_width}x{grid.tile_height} cut a {s.width}x{s.height} "
                                  f"frame into {grid.count(s.width, s.height)} tiles, more than "
                                  f"{ENCODER_LIMITS['max_tiles']}")
        want = TILE_OVERLAP if overlap is None else overlap
        top = grid.largest_overlap(s.width, s.height)
        if top is not None and want > top:
            if overlap is not None:
                raise InvrConfigError(f"tile overlap {overlap}: tiles of {grid.tile_width}x{grid.tile_height} in "
                                      f"{s.width}x{s.height} allow at most {top} (half the narrowest tile)")
            want = top
        return replace(grid, overlap=want)

    @property
    def tile_count(self) -> int:
        return self.tiles.count(self.stream.width, self.stream.height) if self.tiles else 1

    def _band_limited(self, rep: Representation) -> Representation:
        """``rep`` with each axis' encoding up to its Nyquist rate (presets.band_limited_dims) over a tile's
        area."""
        g = self.tiles
        w, h = (g.tile_width + 2 * g.overlap, g.tile_height + 2 * g.overlap) if g else (self.stream.width,
                                                                                        self.stream.height)
        return replace(rep, enc_dims=band_limited_dims(w, h, rep.chunk_frames, rep.sigma))

    def _network_for_rate(self, cfg: EncoderConfig) -> EncoderConfig:
        """``cfg`` with the width and chunk length the bitrate affords (presets.band_for_rate), where unset."""
        assert cfg.bitrate is not None
        rep = cfg.representation

        def network(band: QpBand) -> Representation:
            return replace(rep, **{name: getattr(band, name) for name in cfg.band_by_rate
                                   if name in ("hidden", "chunk_frames")})

        def coded(band: QpBand) -> Representation:  # as the encoder will code it
            return self._band_limited(network(band)) if cfg.band_limit else network(band)

        band = band_for_rate(cfg.preset, cfg.bitrate * 1000 / 8, float(self.stream.frame_rate),
                             lambda b: coded(b).parameter_count * self.tile_count)
        if band is None:
            return replace(cfg, band_by_rate=frozenset())
        chosen = network(band)
        # The recipe is still the DEFAULT_CHUNK_FRAMES network's (from_preset): the same training per frame,
        # times the band's where the steps were not given.
        recipe = band.trained(cfg.recipe) if "steps" in cfg.band_by_rate else cfg.recipe
        return replace(cfg, representation=chosen, recipe=recipe.for_frames(chosen.chunk_frames, rep.chunk_frames),
                       band_by_rate=frozenset())

    @property
    def frames_encoded(self) -> int:
        return self._frames_done

    def encode(self, frame: np.ndarray | None) -> list[Packet]:
        """Add one frame (or flush with ``None``); return the packets completed."""
        n = self.config.representation.chunk_frames
        if frame is None:
            if self._buffer:
                self._submit()
            return self._returned(self.executor.collect(wait=True))
        s = self.stream
        if frame.dtype != np.uint8 or frame.shape != (s.height, s.width, 3):
            raise InvrMediaError(
                f"frame {self._frames_in + len(self._buffer)}: expected uint8 ({s.height}, {s.width}, 3), "
                f"got {frame.dtype} {tuple(frame.shape)}")
        self._buffer.append(frame)
        if len(self._buffer) == n:
            self._submit()
        return self._returned(self.executor.collect())

    def resume_at(self, index: int, first_frame: int, reference: dict[str, np.ndarray] | None,
                  kept: Sequence[Packet] = ()) -> None:
        """Continue an encode whose chunks before ``index`` are coded already (``kept``, in order): the next
        frame given starts chunk ``index`` at ``first_frame``; ``reference`` is the reconstruction of chunk
        ``index - 1``, which a P-chunk there is coded against."""
        if self._chunk or self._buffer:
            raise InvrEncodeError("resume_at() comes before the first frame")
        if index > 0 and self.prediction_of(index) != Prediction.KEY and reference is None:
            raise InvrEncodeError(f"chunk {index} is a P-chunk: resuming there needs chunk {index - 1}'s weights")
        self._chunk, self._frames_in, self._frames_done = index, first_frame, first_frame
        self._start_reference = reference
        if self._rate is not None:
            for packet in kept:
                self._rate.record(packet.frame_count, packet.size + chunk_overhead(self.config.representation,
                                                                                   self.tile_count))

    def prediction_of(self, index: int) -> Prediction:
        """Key chunk or P-chunk: a key chunk every ``keyint`` chunks, and the first."""
        keyint = self.config.keyint
        key = index == 0 or keyint == 1 or (keyint > 1 and index % keyint == 0)
        return Prediction.KEY if key else Prediction.PREVIOUS

    def _submit(self) -> None:
        """Hand the buffered frames to the executor as the next chunk's job."""
        frames, self._buffer = np.stack(self._buffer), []
        index = self._chunk
        chunk = ChunkJob(index, self._frames_in, frames, self.prediction_of(index))
        reference, self._start_reference = self._start_reference, None
        self.executor.submit(GopJob(self.stream, self.config, (chunk,),
                                    reference if chunk.prediction != Prediction.KEY else None))
        self._chunk += 1
        self._frames_in += len(frames)

    def _returned(self, packets: list[Packet]) -> list[Packet]:
        self._frames_done += sum(p.frame_count for p in packets)
        return packets

    def run_jobs(self, jobs: list[ChunkJob], references: list[Reference | None],
                 ) -> list[tuple[Packet, Reference]]:
        """Train chunks together and code them: each chunk's packet and the weights a decoder rebuilds.

        Each tile of each chunk is a network of its own (a *piece*, :class:`_Piece`); pieces of equal frame
        size train and code together, and a chunk's packet holds its tiles' tensors in coded order.
        """
        cfg = self.config
        tiles = self.header.tile_list()
        pieces = [_Piece(job if len(tiles) == 1 else _tile_job(job, tile), c, k)
                  for c, job in enumerate(jobs) for k, tile in enumerate(tiles)]
        refs = [None if references[p.chunk] is None else references[p.chunk][p.tile] for p in pieces]
        # Untiled, the chunks an executor hands over train together however many (--parallel-chunks).
        groups = _by_size(pieces, MAX_PIECES_TOGETHER if len(tiles) > 1 else len(pieces))
        fits = self._train_pieces(pieces, refs, groups, jobs)
        qps = [cfg.qp] * len(jobs)
        if self._rate is not None:
            qps = [self._rate_qp(job, [(fits[i].state, refs[i]) for i, p in enumerate(pieces) if p.chunk == c],
                                 len(jobs)) for c, job in enumerate(jobs)]
        coded = self._code_pieces(pieces, refs, groups, fits, [qps[p.chunk] for p in pieces])
        results = []
        for c, job in enumerate(jobs):
            mine = [i for i, p in enumerate(pieces) if p.chunk == c]
            packet = self.join_tiles(job, [coded[i][0] for i in mine])
            results.append((packet, tuple(coded[i][1] for i in mine)))
        if self._rate is not None:
            for job, (packet, _) in zip(jobs, results):
                self._rate.record(len(job.frames), packet.size + chunk_overhead(cfg.representation, len(tiles)))
        for c, (job, (packet, _)) in enumerate(zip(jobs, results)):
            last = packet.first_frame + packet.frame_count - 1
            mine = [f for f, p in zip(fits, pieces) if p.chunk == c]
            log.info("chunk %d (%s): frames %d-%d%s, %d steps in %.1f s, PSNR %.2f dB trained, %.2f dB coded, "
                     "%d bytes", packet.index, "key" if job.prediction == Prediction.KEY else "P",
                     packet.first_frame, last, f", {len(tiles)} tiles" if len(tiles) > 1 else "",
                     max(f.steps for f in mine), sum(f.seconds for f in mine),
                     _pooled([f.psnr for f in mine], [p.job.frames[0].size for p in pieces if p.chunk == c]),
                     packet.train_psnr, packet.size)
        return results

    def _train_pieces(self, pieces: Sequence[_Piece], refs: Sequence[Weights | None], groups: list[list[int]],
                      jobs: list[ChunkJob]) -> list[FitResult]:
        """Train the pieces, each group as one batch; their fits in the pieces' order."""
        trained: dict[int, FitResult] = {}
        for g, group in enumerate(groups):
            trained.update(zip(group, self.train_chunks([pieces[i].job for i in group], [refs[i] for i in group],
                                                        [pieces[i].tile for i in group], (jobs, g, len(groups)))))
        return [trained[i] for i in range(len(pieces))]

    def _code_pieces(self, pieces: Sequence[_Piece], refs: Sequence[Weights | None], groups: list[list[int]],
                     fits: Sequence[FitResult], qps: Sequence[int]) -> list[tuple[Packet, Weights]]:
        """Code the trained pieces, each group together, at their ``qps``: each piece's packet (its tensors,
        the PSNR over its frames) and reconstruction, in the pieces' order."""
        coded: dict[int, tuple[Packet, Weights]] = {}
        for group in groups:
            coded.update(zip(group, self.code_chunks(
                [pieces[i].job for i in group], [fits[i].state for i in group], [refs[i] for i in group],
                self._held([refs[i] for i in group]), [qps[i] for i in group],
                [fits[i] for i in group], [pieces[i].tile for i in group])))
        return [coded[i] for i in range(len(pieces))]

    def tile_work(self, job: ChunkJob) -> list[TileWork]:
        """A chunk's tiles in the batches that :meth:`run_jobs` trains them in (one area size, at most
        MAX_PIECES_TOGETHER each), their frames cropped to the tiles' areas: the work items a Ray task takes,
        so that a task per batch writes the bytes of an encode in one process. Empty without tiles."""
        tiles = self.header.tile_list()
        if len(tiles) == 1:
            return []
        pieces = [_Piece(_tile_job(job, tile), 0, k) for k, tile in enumerate(tiles)]
        return [TileWork(tuple(pieces[i].tile for i in group), tuple(pieces[i].job for i in group))
                for group in _by_size(pieces, MAX_PIECES_TOGETHER)]

    def run_tiles(self, work: TileWork, references: Sequence[Weights] | None) -> list[tuple[Packet, Weights]]:
        """Train and code one batch of a chunk's tiles (:meth:`tile_work`; a P-chunk's with the same tiles of
        the chunk before it, ``references``) at the config's QP: per tile, its packet (its tensors, the PSNR
        over its area) and the weights a decoder rebuilds. :meth:`join_tiles` makes the chunk's packet."""
        if self._rate is not None:
            raise InvrConfigError("--bitrate chooses a QP per chunk over all its tiles: it codes whole chunks")
        pieces = [_Piece(job, 0, k) for job, k in zip(work.jobs, work.tiles)]
        refs = list(references) if references is not None else [None] * len(pieces)
        groups = [list(range(len(pieces)))]
        fits = self._train_pieces(pieces, refs, groups, [work.jobs[0]])
        done = self._code_pieces(pieces, refs, groups, fits, [self.config.qp] * len(pieces))
        _, h, w, _ = work.jobs[0].frames.shape
        log.info("chunk %d: %d tiles of %dx%d, %d steps in %.1f s, PSNR %.2f dB coded, %d bytes",
                 work.jobs[0].index, len(pieces), w, h, max(f.steps for f in fits), sum(f.seconds for f in fits),
                 _pooled([p.train_psnr for p, _ in done], [w * h * 3] * len(done)), sum(p.size for p, _ in done))
        return done

    def join_tiles(self, job: ChunkJob, packets: Sequence[Packet]) -> Packet:
        """A chunk's packet from its tiles' (every tile's, in coded order): their tensors in coded order, and
        the PSNR of all their areas' pixels."""
        if len(packets) == 1:
            return packets[0]
        areas = [t.area[2] * t.area[3] * 3 for t in self.header.tile_list()]
        psnr = _pooled([p.train_psnr for p in packets], areas)
        tensors = tuple(t for packet in packets for t in packet.tensors)
        return Packet(job.index, job.first_frame, len(job.frames), tensors, psnr, job.prediction)

    def train_chunks(self, jobs: list[ChunkJob], references: list[Weights | None],
                     tiles: Sequence[int] | None = None, part: tuple[list[ChunkJob], int, int] | None = None,
                     ) -> list[FitResult]:
        """Train chunks (or tiles of chunks, ``tiles`` saying which) of equal frame size together, key chunks
        or P-chunks with their references, by :meth:`recipe_of`. ``part`` = (the chunks, i, n): these are the
        i-th of n batches of those chunks' tiles, as progress reports them.

        A P-chunk starts from its reference's weights, trains ``recipe.p_steps`` of the steps at
        ``recipe.p_lr`` with the L1 term on its difference to the reference, which is what is coded.
        """
        cfg = self.config
        chunks, i, n = part or (jobs, 0, 1)
        first, count = chunks[0], sum(len(j.frames) for j in chunks)
        predicted = [ref is not None for ref in references]
        if len(set(predicted)) != 1:
            raise ValueError("key chunks and P-chunks train apart")

        def report(p: FitProgress) -> None:
            if self.progress:
                self.progress(TrainProgress(first.index, first.first_frame, count, i * p.steps + p.step,
                                            n * p.steps, p.psnr, p.elapsed, len(chunks)))

        recipe = self.recipe_of(predicted[0])
        with self.clock.phase("train"):
            return fit_chunks([j.frames for j in jobs], cfg.representation, recipe, device=self.device,
                              seeds=self._seeds(jobs, tiles), psnr_target=self.psnr_stop(recipe),
                              amp=cfg.amp, progress=report, inits=[r or {} for r in references],
                              frozen=self._held(references), anchors=references if predicted[0] else None,
                              clock=self.clock, rate=self.rate_target(recipe))

    def _seeds(self, jobs: Sequence[ChunkJob], tiles: Sequence[int] | None) -> list[int]:
        """Each network's seed: the config's, plus its chunk's index, plus TILE_SEED_STRIDE per tile."""
        tiles = tiles or [0] * len(jobs)
        return [self.config.seed + j.index + TILE_SEED_STRIDE * k for j, k in zip(jobs, tiles)]

    def psnr_stop(self, recipe: Recipe) -> float | None:
        """Where training stops for the --psnr target: the target less what refinement will add."""
        target = self.config.psnr
        if target is None or recipe.refine <= 0:
            return target
        return target - recipe.refine_gain

    def recipe_of(self, predicted: bool) -> Recipe:
        """The recipe of a key chunk or of a P-chunk (fit scales it to a shorter chunk's frames)."""
        return self.config.recipe.for_p_chunk() if predicted else self.config.recipe

    def rate_target(self, recipe: Recipe) -> RateTarget | None:
        """What rate-aware training (``recipe.rate``) aims at: the config's QP. None for the raw coders, and
        under ``--bitrate``, whose QPs are chosen after training."""
        cfg = self.config
        if cfg.coder != CoderKind.DEEPCABAC or cfg.bitrate is not None:
            return None
        return rate_target(cfg.representation, cfg.qp, self.header.coder, recipe.rate, recipe.rate_span)

    def _held(self, references: Sequence[dict[str, np.ndarray] | None]) -> list[dict[str, np.ndarray]]:
        """Per chunk, the tensors kept at their reference's values (``recipe.p_train == "first"``)."""
        if self.config.recipe.p_train != "first" or any(r is None for r in references):
            return [{} for _ in references]
        kept = self.config.representation.tensor_names(TensorRole.HIDDEN_WEIGHT)
        return [{name: r[name] for name in kept} for r in references if r is not None]

    def _rate_qp(self, job: ChunkJob, tiles: list[tuple[Weights, Weights | None]], together: int) -> int:
        """The finest QP at which the chunk (its tiles' trained weights and references), coded without
        refinement, fits its share of the bitrate."""
        assert self._rate is not None
        rep, coder = self.config.representation, self.header.coder
        overhead = chunk_overhead(rep, len(tiles))

        def size_at(qp: int) -> int:
            size = overhead
            for state, reference in tiles:
                with self.clock.phase("code"):
                    tensors, _ = encode_weights(state, rep, coder, qp_plan(qp, rep), reference=reference)
                size += sum(len(t.data) for t in tensors)
            return size

        budget = self._rate.budget(len(job.frames), share=1.0 / together)
        qp = choose_qp(size_at, budget)
        log.debug("chunk %d: qp %d for a budget of %.0f bytes", job.index, qp, budget)
        return qp

    def pack(self, frames: np.ndarray, state: Weights, index: int, first: int) -> Packet:
        """The packet of a trained key chunk of one network (no tiles): its coded weights and the PSNR a
        decoder of them will see."""
        job = ChunkJob(index, first, frames, Prediction.KEY)
        return self.code_chunks([job], [state], [None])[0][0]

    def code_chunks(self, jobs: list[ChunkJob], states: list[Weights], references: list[Weights | None],
                    held: list[Weights] | None = None, qps: list[int] | None = None,
                    fits: Sequence[FitResult] | None = None, tiles: Sequence[int] | None = None,
                    ) -> list[tuple[Packet, Weights]]:
        """Code trained chunks (or tiles of chunks of equal size, ``tiles`` saying which) at ``qps`` (default:
        the config's), their refinement trained together with ``held`` tensors kept at their values; each
        packet carries the PSNR a decoder of it will see.

        Refinement takes ``recipe.refine`` of the key recipe's steps, in proportion to the training the
        chunks had (``fits``; default: all their steps): a chunk that met ``--psnr`` after a tenth of its
        steps is refined for a tenth as long.

        The collapse guard's last line (invrcodec.fit): a chunk whose training was long enough to be judged
        and whose decoded PSNR is not clearly above its flat picture is coded again without refinement; if
        that is no better, InvrEncodeError (the chunk is never written).
        """
        cfg = self.config
        used = 1.0
        trained = self.recipe_of(references[0] is not None)
        chunk_frames = cfg.representation.chunk_frames
        if fits:
            used = min(1.0, max(f.steps / trained.for_frames(len(j.frames), chunk_frames).steps
                                for f, j in zip(fits, jobs)))
        held = held or [{} for _ in jobs]
        qps = qps or [cfg.qp] * len(jobs)
        refine_steps = round(cfg.recipe.refine * cfg.recipe.steps * used)
        seeds = self._seeds(jobs, tiles)
        coded = self._code(jobs, states, seeds, references, held, qps, refine_steps)
        out = []
        for i, (job, (tensors, recon)) in enumerate(zip(jobs, coded)):
            psnr = self._decoded_psnr(job, recon)
            # A fit too short for the guard to judge is not judged here either; nor are the tools' pack() calls,
            # which do not say how long their fits trained.
            judged = fits is not None and fits[i].steps >= watch_from(trained.for_frames(len(job.frames),
                                                                                      chunk_frames))
            floor = collapse_floor(job.frames) if judged else -math.inf
            if psnr < floor and refine_steps > 0:
                log.warning("chunk %d: coded at %.2f dB, no better than a flat picture; coding it again "
                            "without refinement", job.index, psnr)
                (tensors, recon), = self._code([job], [states[i]], [seeds[i]], [references[i]], [held[i]],
                                               [qps[i]], 0)
                psnr = self._decoded_psnr(job, recon)
            if psnr < floor:
                raise InvrEncodeError(
                    f"chunk {job.index}: coded at {psnr:.2f} dB, not above the guard's floor of {floor:.2f} dB "
                    f"(a flat picture's, plus {COLLAPSE_MARGIN_DB:g}) at QP {qps[i]}; chunk not written")
            out.append((Packet(job.index, job.first_frame, len(job.frames), tensors, psnr, job.prediction),
                        recon))
        return out

    def _decoded_psnr(self, job: ChunkJob, recon: Weights) -> float:
        """The PSNR a decoder of these weights will see on the chunk's (or tile's) frames."""
        with self.clock.phase("render"):
            net = build_network(self.config.representation, recon, self.device)
            decoded = render(net, job.frames.shape[:3])
            return rgb_psnr(decoded, job.frames)

    def _code(self, jobs: list[ChunkJob], states: list[Weights], seeds: list[int],
              references: list[Weights | None], held: list[Weights],
              qps: list[int], refine_steps: int) -> list[tuple[tuple[CodedTensor, ...], Weights]]:
        """Code trained chunks' weights (a P-chunk's as the residual to its reference); with
        ``refine_steps``, in stages with refinement between.

        Stages: the first layer's weights (the most sensitive tensor and nearly half the parameters), then the
        other activated layers' weights, then the biases and the output layer. After each stage but the last,
        the tensors not coded yet are trained with the coded ones frozen at their decoded values, so they
        absorb the quantisation error. The bytes of every stage are kept as coded: the decoder's weights stay
        exactly the encoder's reconstruction.
        """
        cfg, rep, coder = self.config, self.config.representation, self.header.coder
        if cfg.coder != CoderKind.DEEPCABAC:
            with self.clock.phase("code"):
                return [encode_weights(state, rep, coder, None, reference=ref)
                        for state, ref in zip(states, references)]
        plans = [qp_plan(qp, rep) for qp in qps]
        if refine_steps <= 0:
            with self.clock.phase("code"):
                return [encode_weights(state, rep, coder, plan, reference=ref)
                        for state, ref, plan in zip(states, references, plans)]
        names = rep.tensor_names()
        stages = [rep.tensor_names(TensorRole.FIRST_WEIGHT), rep.tensor_names(TensorRole.HIDDEN_WEIGHT),
                  rep.tensor_names(TensorRole.BIAS, TensorRole.OUT_WEIGHT, TensorRole.OUT_BIAS)]
        stages = [s for s in stages if s]
        # No PSNR checks: refinement's result is judged after coding, by the decoder's arithmetic (code_chunks).
        refine = replace(cfg.recipe, steps=refine_steps, lr=cfg.recipe.refine_lr, warmup=0, eval_every=0)
        predicted = any(ref is not None for ref in references)
        chunks = [j.frames for j in jobs]
        coded: list[dict[str, CodedTensor]] = [{} for _ in chunks]
        recon: list[Weights] = [{} for _ in chunks]
        for i, stage in enumerate(stages):
            if i > 0:
                with self.clock.phase("refine"):
                    try:
                        fits = fit_chunks(chunks, rep, refine, device=self.device,
                                          seeds=[seed + 1000 * i for seed in seeds], amp=cfg.amp,
                                          inits=states, frozen=[{**h, **r} for h, r in zip(held, recon)],
                                          anchors=references if predicted else None, clock=self.clock)
                        states = [f.state for f in fits]
                    except InvrEncodeError as exc:  # the guard stopped it on every try: go on unrefined
                        log.warning("refinement failed (%s); coding the rest of chunks %s unrefined", exc,
                                    ", ".join(sorted({str(j.index) for j in jobs})))
            for state, ref, plan, coded_c, recon_c in zip(states, references, plans, coded, recon):
                with self.clock.phase("code"):
                    tensors, values = encode_weights(state, rep, coder, plan, names=stage, reference=ref)
                coded_c.update(zip([n for n in names if n in stage], tensors))
                recon_c.update(values)
        return [(tuple(c[n] for n in names), r) for c, r in zip(coded, recon)]


# A tile's seed is its chunk's plus this per tile (Encoder._seeds): apart from every chunk's and retry's
# (fit_chunks adds 7919 per try, refinement 1000 per stage), and tile 0's is the untiled chunk's.
TILE_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class _Piece:
    """One network of an encode: tile ``tile`` of chunk ``chunk`` (a position in run_jobs' list), its frames
    cropped to the tile in ``job``."""

    job: ChunkJob
    chunk: int
    tile: int


def _tile_job(job: ChunkJob, tile: Tile) -> ChunkJob:
    """The chunk's job with its frames cropped to what ``tile``'s network covers (its area)."""
    x, y, w, h = tile.area
    frames = np.ascontiguousarray(job.frames[:, y:y + h, x:x + w])
    return replace(job, frames=frames)


# Tiles trained at once (one INVRBatch) at most: a step's activations grow with them, and a 1080p chunk has
# 120 tiles (about 9 GB of activations at hidden 192 in one batch; 32 keep it near 2.5 GB).
MAX_PIECES_TOGETHER = 32


def _by_size(pieces: Sequence[_Piece], most: int) -> list[list[int]]:
    """Positions of the pieces, grouped by frame size (what trains together), each group in order and of at
    most ``most``."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, piece in enumerate(pieces):
        groups.setdefault(piece.job.frames.shape[1:], []).append(i)
    return [group[k:k + most] for group in groups.values() for k in range(0, len(group), most)]


def _pooled(psnrs: Sequence[float], pixels: Sequence[int]) -> float:
    """The PSNR of tiles taken as one picture (each weighted by its pixels)."""
    return psnrs[0] if len(psnrs) == 1 else pooled_psnr(psnrs, pixels)


def chunk_overhead(rep: Representation, tiles: int = 1) -> int:
    """Bytes a chunk of this representation (``tiles`` networks) costs in the file besides its tensors' data."""
    return format_chunk_overhead(len(rep.tensor_shapes()) * tiles)


def job_runner(stream: StreamInfo, config: EncoderConfig) -> Encoder:
    """A fresh encoder that only runs the GOP jobs handed to it (:func:`invrcodec.codec.jobs.run_gop`): what
    a Ray task trains its chunk with (the factory an Encoder binds its executor to)."""
    return Encoder(stream, config, executor=NoExecutor())


AUTO_PARALLEL_CAP = 64  # chunks trained at once when --parallel-chunks is auto (a 500-frame clip has 34)
BUFFER_BYTES = 1 << 30  # frames held for parallel chunks: at most 1 GiB (e.g. 26 chunks of 15 720p frames)


def auto_parallel_chunks(cfg: EncoderConfig, stream: StreamInfo, device: torch.device) -> int:
    """Chunks to train at once: one on the CPU, where one chunk already fills the cores; on a GPU as many as
    half its free memory holds (frames, targets and a step's activations per chunk), at most AUTO_PARALLEL_CAP
    and at most BUFFER_BYTES of buffered frames."""
    if device.type != "cuda":
        return 1
    rep, recipe = cfg.representation, cfg.recipe
    tiles = cfg.tile if isinstance(cfg.tile, tuple) else None
    networks = TileGrid(*tiles).count(stream.width, stream.height) if tiles else 1  # per chunk
    pixels = rep.chunk_frames * stream.height * stream.width
    step_pixels = recipe.batch * networks or stream.height * stream.width
    activations = step_pixels * (rep.hidden * rep.layers * 24 + rep.in_features * 4)
    per_chunk = pixels * 3 * (1 + 4) + activations + rep.parameter_count * 4 * 4 * networks
    free, _total = torch.cuda.mem_get_info(device)
    fits = min(free // 2 // per_chunk, BUFFER_BYTES // (pixels * 3), AUTO_PARALLEL_CAP)
    return max(1, int(fits))


__all__ = ["CODERS", "DEFAULT_QP", "ENCODER_LIMITS", "QP_ORIGIN", "ChunkJob", "Encoder", "EncoderConfig",
           "TrainProgress", "auto_parallel_chunks", "job_runner"]
