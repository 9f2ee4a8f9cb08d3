"""The jobs of an encode: what the encoder cuts and the executors run, below both.

A :class:`ChunkJob` is one chunk to train and code; a :class:`GopJob` a key chunk and the P-chunks after it
up to the next key chunk (spec/invr-format.md, "Prediction"), or the next chunks of such a group together
with the reconstructed weights they continue from. A :class:`JobRunner` trains and codes chunks (an
:class:`~invrcodec.codec.encoder.Encoder` is one); :func:`run_gop` runs a GOP job's chunks on one, in order.
The encoder hands its executor itself as the runner, and a way to make a fresh runner elsewhere (a
:data:`RunnerFactory`, for a Ray task), so the executors never import the encoder. Imports the ground floor
only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from invrcodec.errors import InvrEncodeError
from invrcodec.types import Packet, Prediction, StreamInfo

if TYPE_CHECKING:
    import torch

Weights = dict[str, np.ndarray]  # reconstructed float32 weights of one network, by tensor name
Reference = tuple[Weights, ...]  # a chunk's reconstructed weights: one network per tile, in coded order

__all__ = ["ChunkJob", "GopJob", "JobRunner", "Reference", "RunnerFactory", "TileWork", "TrainProgress", "Weights",
           "run_gop"]


@dataclass(frozen=True)
class ChunkJob:
    """One chunk to train and code: where it sits in the stream, its frames and how it is predicted."""

    index: int
    first_frame: int
    frames: np.ndarray  # uint8 (T, H, W, 3)
    prediction: Prediction


@dataclass(frozen=True)
class TileWork:
    """Tiles of one chunk that train together (networks of one area size): their numbers in coded order and
    the chunk's job for each, its frames cropped to the tile's area. A chunk with tiles is one or more of these
    (:meth:`JobRunner.tile_work`), which a Ray task each trains and codes apart."""

    tiles: tuple[int, ...]
    jobs: tuple[ChunkJob, ...]


@dataclass(frozen=True)
class TrainProgress:
    """Progress of the chunks being trained (one, or ``chunks`` trained together), for a progress display."""

    chunk: int  # index of the first chunk being trained
    first_frame: int
    frame_count: int  # frames of all chunks being trained
    step: int
    steps: int
    psnr: float
    elapsed: float  # seconds spent on these chunks
    chunks: int = 1


@dataclass(frozen=True)
class GopJob:
    """A key chunk and the P-chunks after it (or the next chunks of such a group), with all they need.

    ``config`` is the encoder's resolved config (:attr:`Encoder.config`), which fixes the seeds,
    representation, recipe and QP; ``reference`` the reconstructed weights of the chunk before ``chunks[0]``
    when that is a P-chunk (an executor supplies the previous job's when it is ``None``).
    """

    stream: StreamInfo
    config: Any  # an EncoderConfig
    chunks: tuple[ChunkJob, ...]
    reference: Reference | None = None


class JobRunner(Protocol):
    """What trains and codes chunks (an :class:`~invrcodec.codec.encoder.Encoder`), as an executor uses it."""

    config: Any  # the EncoderConfig, of which an executor reads device, keyint, amp and bitrate
    device: torch.device
    progress: Callable[[TrainProgress], None] | None

    def run_jobs(self, jobs: list[ChunkJob], references: list[Reference | None],
                 ) -> list[tuple[Packet, Reference]]:
        """Train chunks together and code them: each chunk's packet and the weights a decoder rebuilds."""
        ...

    def tile_work(self, job: ChunkJob) -> list[TileWork]:
        """A chunk's tiles in the batches run_jobs would train them in; empty without tiles."""
        ...

    def run_tiles(self, work: TileWork, references: Sequence[Weights] | None) -> list[tuple[Packet, Weights]]:
        """Train and code one batch of a chunk's tiles: per tile, its packet and reconstructed weights."""
        ...

    def join_tiles(self, job: ChunkJob, packets: Sequence[Packet]) -> Packet:
        """The chunk's packet from every tile's, in coded order."""
        ...


RunnerFactory = Callable[[StreamInfo, Any], JobRunner]  # (stream, config) -> a fresh runner of that encode


def run_gop(job: GopJob, runner: JobRunner) -> Iterator[tuple[Packet, Reference]]:
    """Train and code a job's chunks in order on ``runner`` (with the job's stream and config), each P-chunk
    against the chunk before it: each chunk's packet and the weights a decoder rebuilds from it."""
    reference = job.reference
    for chunk in job.chunks:
        if chunk.prediction == Prediction.KEY:
            reference = None
        elif reference is None:
            raise InvrEncodeError(f"chunk {chunk.index}: a P-chunk needs the reconstruction of chunk "
                                  f"{chunk.index - 1}")
        [(packet, recon)] = runner.run_jobs([chunk], [reference])
        reference = recon
        yield packet, recon
