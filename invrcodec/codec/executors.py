"""Where chunks are trained: the executors that run GOP jobs (README, "Many machines").

A GOP job (:class:`~invrcodec.codec.jobs.GopJob`) is a unit of independent work: it carries everything the
work needs (frames, chunk indices, the encoder's settings, which fix the seeds, representation, recipe and
QP), and running it (:func:`~invrcodec.codec.jobs.run_gop`) yields its packets and nothing else, so it runs
the same in this process, batched on a GPU or on another machine.

An :class:`~invrcodec.codec.encoder.Encoder` binds its executor to itself (the runner that trains and codes
chunks, :class:`~invrcodec.codec.jobs.JobRunner`) and to a factory of fresh runners (for a Ray task); this
module never imports the encoder. The encoder hands its executor one job per chunk as soon as the chunk's
frames are in (a job whose first chunk is a P-chunk and which carries no reference continues from the job
before it), and takes the packets back in stream order:

* :class:`InProcessExecutor`: chunk after chunk in this process (the default on a CPU);
* :class:`BatchedExecutor`: ``parallel`` chunks trained at once as one batched network, P-chunks in waves
  after the chunks they follow (the default on a GPU);
* :class:`RayExecutor`: one Ray task per chunk on a Ray cluster, or with tiles one per batch of a chunk's
  tiles (those of one area size, as they train in one process); a P-chunk's task takes the object ref of the
  reconstruction of the chunk (or the same tiles) before it, so the chunks of a GOP run in order and GOPs, and
  the tiles of a chunk, run side by side.

Determinism: on CPUs of one kind the in-process and Ray executors write the same bytes (each chunk is trained
alone, with its own seed, by the same code). The batched executor trains the same networks to within float
rounding (tests/test_batch.py), so its bytes can differ, as CUDA's differ from the CPU's and a CPU with native
bfloat16 from one without.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np

from invrcodec.codec.jobs import (
    ChunkJob,
    GopJob,
    JobRunner,
    Reference,
    RunnerFactory,
    TileWork,
    TrainProgress,
    Weights,
    run_gop,
)
from invrcodec.errors import InvrConfigError, InvrEncodeError, InvrError
from invrcodec.types import Packet, Prediction, StreamInfo

log = logging.getLogger(__name__)

__all__ = ["BatchedExecutor", "Executor", "InProcessExecutor", "NoExecutor", "RayExecutor"]


class Executor:
    """Runs an encoder's GOP jobs; packets come back in stream order. Subclasses implement submit/collect."""

    runner: JobRunner
    new_runner: RunnerFactory

    def bind(self, runner: JobRunner, new_runner: RunnerFactory) -> None:
        """Attach to the encoder whose jobs this executor will run (``runner``) and to the way of making a
        fresh one of that encode elsewhere (``new_runner``, given the stream and config); called by the
        encoder."""
        self.runner = runner
        self.new_runner = new_runner

    def submit(self, job: GopJob) -> None:
        """Take the next job of the stream (jobs come in order)."""
        raise NotImplementedError

    def collect(self, wait: bool = False) -> list[Packet]:
        """The packets finished since the last call, in order; ``wait``: every job submitted, finished."""
        raise NotImplementedError

    def engine(self) -> dict[str, Any]:
        """What decides the bytes of an encode besides the file's header (kept by a resume journal)."""
        return {"device": self.runner.device.type, "chunks_at_once": 1, "amp": self.runner.config.amp}

    def close(self) -> None:
        """Release what the executor holds (a Ray connection, for one)."""


class NoExecutor(Executor):
    """The executor of an Encoder that only runs the jobs handed to it (:func:`~invrcodec.codec.jobs.run_gop`,
    a Ray task): it takes none of its own."""

    def submit(self, job: GopJob) -> None:
        raise InvrEncodeError("this encoder only runs jobs given to run_gop()")

    def collect(self, wait: bool = False) -> list[Packet]:
        return []


class InProcessExecutor(Executor):
    """Chunk after chunk in this process, as soon as each is submitted."""

    def __init__(self) -> None:
        self._last: Reference | None = None
        self._ready: list[Packet] = []

    def submit(self, job: GopJob) -> None:
        if job.reference is None and job.chunks[0].prediction != Prediction.KEY:
            job = replace(job, reference=self._last)
        for packet, recon in run_gop(job, self.runner):
            self._ready.append(packet)
            self._last = recon

    def collect(self, wait: bool = False) -> list[Packet]:
        out, self._ready = self._ready, []
        return out


class BatchedExecutor(Executor):
    """``parallel`` chunks trained at once as one batched network (the chunks of every job submitted, in
    order, cut into batches of ``parallel``); the rest when the encoder flushes."""

    def __init__(self, parallel: int) -> None:
        if parallel < 1:
            raise InvrConfigError("parallel chunks must be at least 1")
        self.parallel = parallel
        self._chunks: list[ChunkJob] = []
        self._given: dict[int, Reference] = {}  # references that came with a job, by the chunk they precede
        self._last: Reference | None = None
        self._ready: list[Packet] = []

    def engine(self) -> dict[str, Any]:
        return {**super().engine(), "chunks_at_once": self.parallel}

    def submit(self, job: GopJob) -> None:
        if job.reference is not None:
            self._given[job.chunks[0].index] = job.reference
        self._chunks.extend(job.chunks)
        while len(self._chunks) >= self.parallel:
            batch, self._chunks = self._chunks[:self.parallel], self._chunks[self.parallel:]
            self._run(batch)

    def collect(self, wait: bool = False) -> list[Packet]:
        if wait and self._chunks:
            batch, self._chunks = self._chunks, []
            self._run(batch)
        out, self._ready = self._ready, []
        return out

    def _run(self, jobs: list[ChunkJob]) -> None:
        """Train and code a batch of chunks in waves: a P-chunk needs the coded chunk before it, so wave d
        holds the chunks d P-chunks away from a chunk whose reference is already coded (a key chunk, or the
        batch's first); a wave's key chunks and P-chunks train apart, as their recipes differ."""
        waves: dict[tuple[int, Prediction], list[ChunkJob]] = {}
        depth = 0
        for i, job in enumerate(jobs):
            depth = 0 if i == 0 or job.prediction == Prediction.KEY else depth + 1
            waves.setdefault((depth, job.prediction), []).append(job)
        done: dict[int, tuple[Packet, Reference]] = {}
        for _, wave in sorted(waves.items()):
            refs = [None if job.prediction == Prediction.KEY else self._reference_of(job.index, done)
                    for job in wave]
            for job, result in zip(wave, self.runner.run_jobs(wave, refs)):
                done[job.index] = result
        self._ready.extend(done[job.index][0] for job in jobs)
        self._last = done[jobs[-1].index][1]

    def _reference_of(self, index: int, done: dict[int, tuple[Packet, Reference]]) -> Reference:
        if index - 1 in done:
            return done[index - 1][1]
        reference = self._given.pop(index, None) or self._last
        if reference is None:
            raise InvrEncodeError(f"chunk {index}: a P-chunk needs the reconstruction of chunk {index - 1}")
        return reference


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InvrConfigError("--ray needs Ray, which is not installed: pip install 'invrcodec[ray]'") from None
    return ray


class RayExecutor(Executor):
    """One Ray task per chunk on a Ray cluster (with tiles, one per batch of the chunk's tiles, joined here
    into the chunk's packet), at most ``in_flight`` chunks submitted and not yet collected.

    ``address``: ``"local"`` starts a cluster on this machine (``num_cpus`` CPUs, default all); anything else
    goes to ``ray.init(address=...)`` (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``). A task asks for
    ``threads`` CPUs (default 1) and, when the encoder's device is CUDA (or ``auto`` on a cluster with GPUs),
    one GPU; a task whose worker died is retried ``max_retries`` times. Frames go to the object store once per
    chunk (``ray.put``); a P-chunk's task gets the reconstruction of the chunk before it as an object ref,
    never through this process. ``in_flight`` defaults to the cluster's task slots times (GOP length + 1),
    enough to keep every slot busy with a GOP of its own; memory is that many chunks' frames, whatever the
    video's length.
    """

    def __init__(self, address: str = "local", *, num_cpus: int | None = None, threads: int = 0,
                 in_flight: int | None = None, max_retries: int = 3) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.threads = threads
        self.in_flight = in_flight
        self.max_retries = max_retries
        self._ray: Any = None
        self._started = False
        self._gpu = False
        self._remote: Any = None
        self._tiles_remote: Any = None
        # object ref of the reconstruction of the last chunk submitted; with tiles, one per batch of tiles
        self._last: Any = None
        # chunks out: the job (frames dropped), the object refs of its results (one per task), when submitted
        self._inflight: collections.deque[tuple[ChunkJob, list[Any], float]] = collections.deque()
        self._ready: list[Packet] = []

    def bind(self, runner: JobRunner, new_runner: RunnerFactory) -> None:
        super().bind(runner, new_runner)
        cfg = runner.config
        if getattr(cfg, "bitrate", None) is not None:
            raise InvrConfigError("--bitrate cannot run on Ray yet: its rate control carries over from chunk "
                                  "to chunk")
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            local = self.address == "local"
            try:
                # a cluster of our own, gone when we are: its start-up warnings are noise to a user
                ray.init(address=self.address, num_cpus=self.num_cpus if local else None,
                         include_dashboard=False, logging_level=logging.ERROR if local else logging.WARNING,
                         log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InvrEncodeError(f"ray: cannot connect to {self.address}: {exc}") from exc
            self._started = True
        resources = ray.cluster_resources()
        self._gpu = cfg.device.startswith("cuda") or (cfg.device == "auto" and resources.get("GPU", 0) > 0)
        cpus = max(self.threads, 1)
        options = {"num_cpus": cpus, "num_gpus": 1 if self._gpu else 0, "max_retries": self.max_retries,
                   "num_returns": 2}
        self._remote = ray.remote(invr_train_chunk).options(**options)
        self._tiles_remote = ray.remote(invr_train_tiles).options(**options)
        slots = int(resources.get("GPU", 0)) if self._gpu else int(resources.get("CPU", 1)) // cpus
        if slots < 1:
            raise InvrEncodeError(f"ray: the cluster at {self.address} has no {'GPU' if self._gpu else 'CPU'} "
                                  f"for a task of {cpus} CPUs")
        gop = cfg.keyint if 0 < cfg.keyint <= 16 else 16
        self.in_flight = self.in_flight or slots * (gop + 1)
        log.info("ray: %d task slots (%s), up to %d chunks in flight", slots, "GPU" if self._gpu else
                 f"{cpus} CPU each", self.in_flight)

    def engine(self) -> dict[str, Any]:
        return {**super().engine(), "device": "cuda" if self._gpu else "cpu"}

    def submit(self, job: GopJob) -> None:
        ray, cfg = self._ray, self.runner.config
        worker_cfg = replace(cfg, device="cuda" if self._gpu else "cpu")
        reference = job.reference
        for chunk in job.chunks:
            if chunk.prediction != Prediction.KEY and reference is None and self._last is None:
                raise InvrEncodeError(f"chunk {chunk.index}: a P-chunk needs the reconstruction of chunk "
                                      f"{chunk.index - 1}")
            works = self.runner.tile_work(chunk)
            if not works:  # one network: one task, its reference the chunk before's
                ref_arg: Any = None
                if chunk.prediction != Prediction.KEY:
                    ref_arg = ray.put(reference) if reference is not None else self._last
                out, recon = self._remote.remote(self.new_runner, job.stream, worker_cfg, chunk.index,
                                                 chunk.first_frame, chunk.prediction, self.threads,
                                                 ray.put(chunk.frames), ref_arg)
                outs, self._last = [out], recon
            else:  # a task per batch of tiles, each tile's reference the same tile's of the chunk before
                outs, recons = [], []
                for g, work in enumerate(works):
                    ref_arg = None
                    if chunk.prediction != Prediction.KEY:
                        ref_arg = ray.put(tuple(reference[k] for k in work.tiles)) if reference is not None \
                            else self._last[g]
                    out, recon = self._tiles_remote.remote(self.new_runner, job.stream, worker_cfg, self.threads,
                                                           ray.put(work), ref_arg)
                    outs.append(out)
                    recons.append(recon)
                self._last = recons
            reference = None
            # the job without its frames' pixels (a new empty array: a view would keep them), its frame count kept
            bare = replace(chunk, frames=np.empty((len(chunk.frames), 0, 0, 3), np.uint8))
            self._inflight.append((bare, outs, time.monotonic()))
            self._harvest(wait_all=False)

    def collect(self, wait: bool = False) -> list[Packet]:
        self._harvest(wait_all=wait)
        out, self._ready = self._ready, []
        return out

    def _harvest(self, wait_all: bool) -> None:
        """Take the finished chunks at the head of the queue; block while more than ``in_flight`` are out
        (or, with ``wait_all``, until none is), waking twice a second so that signals are handled."""
        ray = self._ray
        while self._inflight:
            chunk, refs, since = self._inflight[0]
            block = wait_all or len(self._inflight) > (self.in_flight or 1)
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.5 if block else 0)
            if len(ready) < len(refs):
                if block:
                    continue
                return
            self._inflight.popleft()
            results = [self._get(ref, chunk) for ref in refs]
            for _, lines in results:
                for line in lines:
                    log.info("%s", line)
            if len(results) == 1 and isinstance(results[0][0], Packet):
                packet = results[0][0]
            else:  # the batches of a chunk's tiles: back into coded order, and one packet
                tiles = sorted((k, p) for part, _ in results for k, p in part)
                packet = self.runner.join_tiles(chunk, [p for _, p in tiles])
                log.info("chunk %d (%s): frames %d-%d, %d tiles in %d ray tasks, PSNR %.2f dB coded, %d bytes",
                         packet.index, "key" if packet.prediction == Prediction.KEY else "P", packet.first_frame,
                         packet.first_frame + packet.frame_count - 1, len(tiles), len(refs), packet.train_psnr,
                         packet.size)
            self._ready.append(packet)
            self._report(packet, time.monotonic() - since)

    def _get(self, ref: Any, chunk: ChunkJob) -> tuple[Any, list[str]]:
        ray = self._ray
        try:
            return ray.get(ref)  # type: ignore[no-any-return]
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, InvrError):
                raise type(cause)(str(cause)) from exc
            raise InvrEncodeError(f"chunk {chunk.index}: {type(cause).__name__}: {cause}") from exc
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvrEncodeError(f"chunk {chunk.index}: ray: {first}") from exc

    def _report(self, packet: Packet, elapsed: float) -> None:
        """Progress per finished chunk (a task reports nothing while it trains)."""
        if self.runner.progress is None:
            return
        self.runner.progress(TrainProgress(packet.index, packet.first_frame, packet.frame_count, 1, 1,
                                            packet.train_psnr, elapsed, 1))

    def close(self) -> None:
        """Drop the chunks still out and, for a cluster started here, stop it."""
        self._inflight.clear()
        self._last = None
        if self._started and self._ray is not None:
            self._ray.shutdown()
            self._started = False


class _Lines(logging.Handler):
    """Collects a worker's log lines about its chunk, to be logged again by the driver."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.level_before = logging.NOTSET  # the invrcodec logger's level before the task

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _worker_setup(threads: int) -> _Lines:
    """A Ray worker trains as invr-enc does, with its log lines collected for the driver."""
    import torch

    from invrcodec.hostmem import keep_freed_memory

    torch.set_num_threads(max(threads, 1))
    keep_freed_memory()
    handler = _Lines()
    logger = logging.getLogger("invrcodec")
    handler.level_before = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _worker_lines(handler: _Lines) -> list[str]:
    logger = logging.getLogger("invrcodec")
    logger.removeHandler(handler)
    logger.setLevel(handler.level_before)
    return [f"{line} [ray worker {os.getpid()}]" for line in handler.lines]


def invr_train_tiles(new_runner: RunnerFactory, stream: StreamInfo, config: Any, threads: int, work: TileWork,
                     references: tuple[Weights, ...] | None,
                     ) -> tuple[tuple[list[tuple[int, Packet]], list[str]], tuple[Weights, ...]]:
    """The Ray task of one batch of a chunk's tiles (:class:`~invrcodec.codec.jobs.TileWork`), trained by a
    fresh runner of the encode: each tile's number and packet, the log lines of its training, and the tiles'
    reconstructions, which the same batch of the next P-chunk takes."""
    handler = _worker_setup(threads)
    try:
        done = new_runner(stream, config).run_tiles(work, references)
    finally:
        lines = _worker_lines(handler)
    return (list(zip(work.tiles, (p for p, _ in done))), lines), tuple(w for _, w in done)


def invr_train_chunk(new_runner: RunnerFactory, stream: StreamInfo, config: Any, index: int, first_frame: int,
                     prediction: Prediction, threads: int, frames: np.ndarray, reference: Reference | None,
                     ) -> tuple[tuple[Packet, list[str]], Reference]:
    """The Ray task of one chunk (its process is titled ``ray::invr_train_chunk`` while it runs), trained by
    a fresh runner of the encode (``new_runner(stream, config)``): the packet, the log lines of its training,
    and the reconstruction that the next P-chunk's task takes."""
    chunk = ChunkJob(index, first_frame, np.array(frames), prediction)  # a writable copy of the store's
    handler = _worker_setup(threads)
    try:
        [(packet, recon)] = list(run_gop(GopJob(stream, config, (chunk,), reference),
                                         new_runner(stream, config)))
    finally:
        lines = _worker_lines(handler)
    return (packet, lines), recon
