"""invr-enc: encode a video (any file FFmpeg reads, or Y4M on stdin) into an .invr file.

A thin command: it parses options into an :class:`~invrcodec.codec.encoder.EncoderConfig`, feeds frames from
:mod:`invrcodec.media.pyav` to the :class:`~invrcodec.codec.encoder.Encoder` and its packets to the muxer, and reports.
The source's first audio stream goes into the file as it is (its packets, stream copy) unless ``-an`` says
not to: to stdout beside the chunks as they come, to a file when it is written from the journal at the end, so
that ``--resume``, Ray and parallel encodes never see it.
"""

from __future__ import annotations

import gc
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ..choices import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_KEYINT,
    DEFAULT_PRESET,
    DEFAULT_VARIANT,
    PRESET_NAMES,
    VARIANT_NAMES,
)
from . import common
from .common import CliError

if TYPE_CHECKING:
    from ..codec.encoder import EncoderConfig

log = logging.getLogger("invrcodec.cli.enc")

TOOL = "invr-enc"


def _enc_dims(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    parts = value.replace("x", ",").split(",")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 0:
        raise click.BadParameter(f"{value!r} is not LX,LY,LT (three non-negative integers, e.g. 64,64,32)")
    return dims  # type: ignore[return-value]


def _bitrate(value: str) -> float:
    text = value.strip().lower()
    scale = {"k": 1.0, "m": 1000.0}.get(text[-1:], None)
    try:
        kbps = float(text[:-1] if scale else text) * (scale or 1.0)
    except ValueError:
        kbps = -1.0
    if not (0 < kbps < 1e7):
        raise ValueError(f"{value!r} is not a bitrate in kbit/s (e.g. 300, 300k or 1.5M)")
    return kbps


def _tile(value: str) -> tuple[int, int] | str:
    text = value.strip().lower()
    if text in ("auto", "none"):
        return text
    return _size(text)


def _size(value: str) -> tuple[int, int]:
    from ..media.pyav import parse_size

    return parse_size(value)


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Examples:\n\n\b\n  invr-enc in.mp4 out.invr\n"
    "  ffmpeg -i in.mkv -f yuv4mpegpipe - | invr-enc - out.invr\n"
    "  invr-enc --preset paper --crop-square --scale 128x128 in.mp4 out.invr",
)
@click.argument("input", metavar="IN")
@click.argument("output", metavar="OUT")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default=DEFAULT_PRESET, show_default=True,
              help="Speed against quality and size.")
@click.option("--psnr", type=click.FloatRange(min=1.0, max=100.0), default=None, metavar="DB",
              help="Target PSNR: train each chunk until it reaches this, refinement's gain included "
              "(or the step cap).")
@click.option("--qp", type=int, default=None, metavar="N",
              help="Weight quantiser (larger = smaller, worse); in fast and ultrafast it also sets the network "
              "unless --hidden / --chunk-frames are given: wider below 35, narrower above 38, and below 31 "
              "shorter chunks (45 frames at 27-30, 30 at 23-26, 15 at 22 and below).")
@click.option("--bitrate", "-b", callback=common.parsed(_bitrate), default=None, metavar="KBPS",
              help="Average bitrate over the clip in kbit/s (x264's --bitrate; 500k and 1.5M also read); "
              "chooses a QP per chunk instead of --qp.")
@click.option("--chunk-frames", type=click.IntRange(min=1), default=None, metavar="N",
              help=f"Frames per network (default {DEFAULT_CHUNK_FRAMES}, shorter at fine QPs in fast and "
              "ultrafast; paper: 15). The preset's training per frame stays the same.")
@click.option("--tile", callback=common.parsed(_tile), default=None, metavar="auto|none|WxH",
              help="Cut each frame into tiles with a network each: auto (default; paper: none) makes tiles of "
              "about 128x128 on a frame larger than that, WxH tiles of that size, none one network per frame.")
@click.option("--tile-overlap", type=click.IntRange(min=0, max=65535), default=None, metavar="N",
              help="Pixels each tile's network reaches into its neighbours, blended there so that no seam shows "
              "(default 2, less where the tiles are narrow).")
@click.option("--keyint", type=click.IntRange(min=0), default=None, metavar="N",
              help="A key chunk every N chunks, P-chunks between (0: only the first; 1: all key). "
              f"Default {DEFAULT_KEYINT}; paper: 1.")
@click.option("--frames", type=click.IntRange(min=1), default=None, metavar="N", help="Encode only N frames.")
@click.option("--seek", type=click.IntRange(min=0), default=0, metavar="N", help="Skip the first N frames.")
@click.option("--device", default="auto", show_default=True, callback=common.parse_device,
              metavar="auto|cpu|cuda[:N]", help="Where to train.")
@click.option("--parallel-chunks", type=click.IntRange(min=0, max=4096), default=0, show_default=True,
              metavar="N", help="Chunks trained at once; 0 = as many as fit on a GPU, one on the CPU.")
@common.threads_option
@click.option("--ray", "ray_address", default=None, metavar="local|ADDRESS",
              help="Train the chunks on a Ray cluster: 'local' starts one on this machine, otherwise an address "
              "as ray.init takes it (auto, HOST:6379, ray://HOST:10001). Needs pip install 'invrcodec[ray]'.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted encode of OUT from its journal OUT.part (same input and options): "
              "its finished chunks are kept, the rest trained.")
@click.option("--variant", type=click.Choice(VARIANT_NAMES), default=DEFAULT_VARIANT, show_default=True,
              help="Positional encoding / network family from the paper.")
@click.option("--enc-dims", callback=_enc_dims, default=None, metavar="LX,LY,LT",
              help="Encoding frequencies per axis.")
@click.option("--hidden", type=click.IntRange(min=1), default=None, metavar="N", help="Hidden layer width.")
@click.option("--layers", type=click.IntRange(min=1), default=None, metavar="N", help="Hidden layers.")
@click.option("--steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Training steps cap per chunk, for chunks of any length (a preset's own count shrinks for "
              "chunks shorter than --chunk-frames).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--crop-square", is_flag=True, help="Centre-crop the input to a square.")
@click.option("--scale", callback=common.parsed(_size), default=None, metavar="WxH",
              help="Resize the input (area filter), e.g. 128x128.")
@click.option("--progress", "progress_target", default=None, metavar="FILE|-",
              help="Write key=value progress lines to FILE or stdout ('-'; stderr when OUT is '-').")
@click.option("-an", "no_audio", is_flag=True,
              help="Leave the audio out (by default the source's first audio stream is kept as it is: its "
              "packets are copied into OUT, as ffmpeg's -c:a copy).")
@click.option("--benchmark", is_flag=True,
              help="At the end, say where the time went: start-up, read, compile, train, check, refine, code, "
              "render, write (ffmpeg's -benchmark).")
@common.common_options
def command(
    input: str,
    output: str,
    preset: str,
    psnr: float | None,
    qp: int | None,
    bitrate: float | None,
    chunk_frames: int | None,
    tile: tuple[int, int] | str | None,
    tile_overlap: int | None,
    keyint: int | None,
    frames: int | None,
    seek: int,
    device: str,
    parallel_chunks: int,
    threads: int,
    ray_address: str | None,
    resume: bool,
    variant: str,
    enc_dims: tuple[int, int, int] | None,
    hidden: int | None,
    layers: int | None,
    steps: int | None,
    seed: int,
    crop_square: bool,
    scale: tuple[int, int] | None,
    progress_target: str | None,
    no_audio: bool,
    benchmark: bool,
    tool: common.ToolOptions,
) -> int:
    """Encode IN (a video file, or - for Y4M on stdin) into OUT (.invr, or - for stdout)."""

    def config() -> EncoderConfig:  # made once the input is open: a refused setting is then one line
        from ..codec.encoder import EncoderConfig

        return EncoderConfig.from_preset(
            preset, variant=variant, psnr=psnr, qp=qp, bitrate=bitrate, chunk_frames=chunk_frames, keyint=keyint,
            enc_dims=enc_dims, hidden=hidden, layers=layers, steps=steps, device=device, seed=seed,
            parallel_chunks=parallel_chunks, tile=tile, overlap=tile_overlap,
        )

    request = EncodeRequest(
        input=input, output=output, tool=tool, resume=resume, seek=seek, frames=frames, crop_square=crop_square,
        scale=scale, config=config, threads=threads, ray_address=ray_address, parallel_chunks=parallel_chunks,
        progress_target=progress_target, benchmark=benchmark, audio=not no_audio,
    )
    tool.setup_logging(TOOL)
    return common.execute(TOOL, lambda: _encode(request))


@dataclass(frozen=True)
class EncodeRequest:
    """What invr-enc was asked, built once from its options (their help says what each is); the encoder's
    own settings go into ``config``, which makes the :class:`~invrcodec.codec.encoder.EncoderConfig`."""

    input: str
    output: str
    tool: common.ToolOptions  # -y/-n, -v/-q/--loglevel, --no-progress
    resume: bool
    seek: int
    frames: int | None
    crop_square: bool
    scale: tuple[int, int] | None
    config: Callable[[], EncoderConfig]
    threads: int
    ray_address: str | None
    parallel_chunks: int
    progress_target: str | None
    benchmark: bool  # the time by phase at the end (issue 15)
    audio: bool = True  # keep the source's first audio stream (not -an)


@dataclass
class _Tracker:
    """Progress state between the encoder's callbacks."""

    total: int
    chunk_frames: int
    status: common.StatusLine | None
    machine: common.ProgressOutput | None
    start: float = field(default_factory=time.monotonic)
    frames_done: float = 0.0
    last_draw: float = 0.0

    def on_train(self, ev: Any) -> None:
        common.raise_pending_signal()  # training calls this every few steps: an interrupt always ends it
        steps = max(int(getattr(ev, "steps", 0) or 0), 1)
        step = int(getattr(ev, "step", 0) or 0)
        first = int(getattr(ev, "first_frame", 0) or 0)
        count = int(getattr(ev, "frame_count", 0) or 0)
        self.frames_done = first + count * min(step, steps) / steps
        elapsed = time.monotonic() - self.start
        fps = self.frames_done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.frames_done) / fps if (fps > 0 and self.total) else None
        psnr = getattr(ev, "psnr", None)
        chunk = int(getattr(ev, "chunk", 0) or 0)
        together = max(int(getattr(ev, "chunks", 1) or 1), 1)
        nchunks = math.ceil(self.total / self.chunk_frames) if self.total and self.chunk_frames else 0
        if self.machine is not None:
            self.machine.report(
                {
                    "chunk": chunk,
                    "chunks_training": together,
                    "chunks": nchunks,
                    "first_frame": first,
                    "frame_count": count,
                    "step": step,
                    "steps": steps,
                    "psnr": f"{psnr:.3f}" if psnr is not None else "nan",
                    "frames_done": f"{self.frames_done:.2f}",
                    "total_frames": self.total,
                    "fps": f"{fps:.3f}",
                    "elapsed": f"{elapsed:.2f}",
                    "eta": f"{eta:.1f}" if eta is not None else "nan",
                },
                force=step >= steps,
            )
        now = time.monotonic()
        if self.status is not None and (now - self.last_draw >= 0.2 or step >= steps):
            self.last_draw = now
            of = f"/{nchunks}" if nchunks else ""
            tot = f"/{self.total}" if self.total else ""
            parts = [
                f"chunk {chunk + 1}{of}" if together == 1 else f"chunks {chunk + 1}-{chunk + together}{of}",
                f"frames {self.frames_done:.0f}{tot}",
                f"step {step}/{steps}",
                f"PSNR {psnr:.2f} dB" if psnr is not None else "PSNR -",
                f"{fps:.2f} fps",
            ]
            if eta is not None:
                parts.append(f"ETA {common.format_duration(eta)}")
            self.status.show("  ".join(parts))


def _describe_source(reader: Any, audio: bool) -> None:
    src = reader.source_info
    rate = src.frame_rate
    rate_s = f"{rate.numerator}/{rate.denominator}" if rate.denominator != 1 else str(rate.numerator)
    count = reader.info.frame_count
    frames = f"{count} frames" if count else "frame count unknown"
    log.info(f"{reader.name}: {src.width}x{src.height} {src.pix_fmt} @ {rate_s} fps, {frames}")
    if (reader.info.width, reader.info.height) != (src.width, src.height):
        log.info(f"{reader.name}: encoding {reader.info.width}x{reader.info.height} (cropped/scaled)")
    if reader.audio is not None:
        a = reader.audio
        log.info(f"{reader.name}: {reader.audio_source.describe()}: {a.sample_rate} Hz, {a.layout_text}: "
                 "kept as it is (stream copy)")
    for other in reader.other_streams:
        if other.kind != "audio":
            why = "INVR stores video and one audio stream"
        elif not audio:
            why = "-an"
        elif other.why:
            why = f"it cannot be stored: {other.why}"
        else:
            why = "invr-enc keeps the first audio stream only"
        (log.info if why == "-an" else log.warning)(f"{reader.name}: {other.describe()} left out ({why})")
    for note in reader.notes:
        (log.warning if "alpha" in note else log.info)(f"{reader.name}: {note}")


def _encode(req: EncodeRequest) -> int:
    src, dst = req.input, req.output
    stdin_used = src == "-"
    if src != "-" and dst != "-" and common.same_file(src, dst):
        raise CliError(f"{dst}: output is the same file as the input")
    if req.resume and dst == "-":
        raise click.UsageError("--resume needs an output file: an encode to stdout keeps no journal")
    if req.ray_address and req.parallel_chunks > 1:
        raise click.UsageError("--parallel-chunks is not for --ray: each Ray task trains one chunk")
    common.check_output(dst, req.tool.overwrite, stdin_in_use=stdin_used)
    if dst != "-":
        _check_journal(dst, req.resume, req.tool.overwrite)

    from ..media.pyav import VideoReader

    held = common.HeldInfo()  # until the encode starts: a refused resume or setup error is one line
    source = common.open_stdin("pipe a Y4M stream in (ffmpeg -i in.mp4 -f yuv4mpegpipe -)") if stdin_used else src
    with VideoReader(
        source,
        seek=req.seek,
        frames=req.frames,
        crop_square=req.crop_square,
        scale=req.scale,
        name="stdin" if stdin_used else src,
        audio=req.audio,
    ) as reader:
        _describe_source(reader, req.audio)
        return _encode_from(reader, req, held)


def _check_journal(dst: str, resume: bool, overwrite: bool | None) -> None:
    """A journal of an interrupted encode of ``dst`` is resumed (--resume), dropped (-y) or protected."""
    import os

    from ..codec.resume import journal_path

    path = journal_path(dst)
    if resume or not os.path.lexists(path):
        return
    if not overwrite:
        raise CliError(f"{path}: holds the finished chunks of an interrupted encode of {dst}; "
                       "--resume continues it, -y starts over")
    os.unlink(path)
    log.info(f"{path}: journal of an interrupted encode removed (-y): starting over")


def _executor(req: EncodeRequest) -> Any:
    if not req.ray_address:
        return None
    from ..codec.executors import RayExecutor

    return RayExecutor(req.ray_address, threads=req.threads)


def _encode_from(reader: Any, req: EncodeRequest, held: common.HeldInfo) -> int:
    from ..net.compiling import keep_kernels
    from ..codec.encoder import Encoder
    from ..hostmem import keep_freed_memory

    common.apply_threads(req.threads)
    keep_kernels()
    keep_freed_memory()

    dst = req.output
    cfg = req.config()
    status = common.status_line(req.tool.progress and logging.getLogger("invrcodec").isEnabledFor(logging.INFO))
    machine = common.ProgressOutput(req.progress_target, stdout_busy=dst == "-") if req.progress_target else None
    total = reader.expected_frames
    tracker = _Tracker(total=total, chunk_frames=1, status=status, machine=machine)
    executor = _executor(req)
    try:
        encoder = Encoder(reader.info, cfg, progress=tracker.on_train, executor=executor)
        return _run(reader, encoder, req, tracker, held)
    finally:
        if executor is not None:
            executor.close()


def _run(reader: Any, encoder: Any, req: EncodeRequest, tracker: _Tracker, held: common.HeldInfo) -> int:
    from ..codec.resume import ResumableEncoder, journal_path

    dst, status, machine = req.output, tracker.status, tracker.machine
    # before anything is logged: a refused resume is one line
    job = None if dst == "-" else ResumableEncoder(encoder, journal_path(dst), resume=req.resume)
    held.release()
    header = encoder.header
    tracker.chunk_frames = header.representation.chunk_frames
    settings = getattr(header.metadata, "settings", "")
    if settings:
        log.info(f"settings: {settings}")
    log.debug(f"representation: {header.representation}")
    if encoder.parallel > 1 and not req.ray_address:
        log.info(f"training {encoder.parallel} chunks at once on {encoder.device}")

    packets: list[tuple[int, float, int]] = []  # (frame_count, train_psnr, size) per chunk
    start = time.monotonic()
    _start_up(encoder.clock)
    audio = _Audio(reader)
    try:
        if job is None:
            size = _to_stdout(reader, encoder, packets, audio)
        else:
            size = _to_file(reader, job, req.output, req.tool.overwrite, packets, audio)
    finally:
        if status is not None:
            status.clear()
    elapsed = time.monotonic() - start
    frames = sum(p[0] for p in packets)
    if machine is not None:
        machine.report(
            {"frames_done": frames, "total_frames": frames, "elapsed": f"{elapsed:.2f}", "bytes": size}, final=True
        )
        machine.close()
    _summary(reader.info, packets, frames, elapsed, size, audio.bytes_in_file)
    audio.summary(reader, frames, req.audio)
    _bench(encoder.clock, req.benchmark)
    return 0


@dataclass
class _Audio:
    """The source's audio on its way into the file: the stream kept, the packets handed to the muxer."""

    reader: Any
    packets: int = 0
    payload: int = 0
    first: Any = None  # the first packet (for the start time)
    end: Any = None  # the largest pts + duration
    bytes_in_file: int = 0  # what the audio takes in OUT: declarations, records, audio index

    @property
    def streams(self) -> tuple[Any, ...]:
        return (self.reader.audio,) if self.reader.audio is not None else ()

    def feed(self, out: Any, final: bool = False) -> list[Any]:
        """The packets demuxed since the last call, to the muxer ``out`` (when given) and counted."""
        got = self.reader.take_audio(final=final)
        for p in got:
            if self.first is None:
                self.first = p
            end = p.pts + p.duration
            self.end = end if self.end is None else max(self.end, end)
        self.packets += len(got)
        self.payload += sum(len(p.data) for p in got)
        if out is not None:
            out.mux_audio(got)
        return got

    def summary(self, reader: Any, frames: int, asked: bool) -> None:
        """The end summary's audio lines: what was kept, where it starts and ends against the video, what was
        cut or mended."""
        name = reader.name
        if reader.audio is None:
            if any(o.kind == "audio" for o in reader.other_streams):
                log.info(f"audio: none kept ({'-an' if not asked else 'no audio stream could be stored'})")
            return
        a, tb = reader.audio, reader.audio.time_base
        rate = reader.info.frame_rate
        video_end = frames / float(rate) if rate else 0.0
        if not self.packets:
            log.warning(f"audio: {reader.audio_source.describe()} kept, but none of its packets is in the "
                        "frames' time")
            return
        start, end = float(self.first.pts * tb), float(self.end * tb)
        seconds = end - start
        kbps = self.payload * 8 / seconds / 1000 if seconds > 0 else 0.0
        log.info(
            f"audio: {reader.audio_source.describe()} kept by stream copy: {a.describe()}, "
            f"{self.packets} packets, {self.payload} bytes "
            f"({kbps:.1f} kbit/s; {self.bytes_in_file} bytes in the file with its framing), "
            f"{start:.3f} s to {end:.3f} s against the video's 0 to {video_end:.3f} s"
        )
        counts = reader.audio_counts
        if start < 0 and not counts.get("cut_before"):  # (a cut's first packet starts before, as a rule)
            log.info(f"audio: starts {-start:.3f} s before the first frame (kept: a player plays it before "
                     "the picture, or drops it as a decoder's priming)")
        elif start > 0.0005:
            log.info(f"audio: starts {start:.3f} s after the first frame (kept where it is)")
        if end > video_end + 0.0005 and not counts.get("cut_after"):
            log.info(f"audio: lasts {end - video_end:.3f} s after the last frame (kept)")
        if counts.get("cut_before"):
            log.info(f"audio: {counts['cut_before']} packets before the first frame's time left out (--seek)")
        if counts.get("cut_after"):
            log.info(f"audio: {counts['cut_after']} packets after the last frame's time left out (--frames)")
        if counts.get("made_up"):
            log.warning(f"{name}: {counts['made_up']} audio packets without timestamps placed after the "
                        "packet before them")
        if counts.get("dts_raised"):
            log.warning(f"{name}: {counts['dts_raised']} audio packets whose dts went backwards given the "
                        "dts before them")


def _start_up(clock: Any) -> None:
    from ..clock import process_age

    age = process_age()
    if age is not None:
        clock.add("start-up", age)


def _bench(clock: Any, shown: bool) -> None:
    """The time by phase, as ffmpeg's -benchmark line (at debug level without --benchmark)."""
    total = sum(clock.seconds.values())
    line = f"bench: {clock.report()}; total {total:.2f} s"
    try:
        import resource
    except ImportError:  # not on Windows
        pass
    else:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line += f", utime={usage.ru_utime:.2f}s stime={usage.ru_stime:.2f}s maxrss={usage.ru_maxrss}KiB"

    (log.info if shown else log.debug)(line)


def _to_stdout(reader: Any, encoder: Any, packets: list[tuple[int, float, int]], audio: _Audio) -> int:
    """Encode straight into the muxer on stdout (no journal: a pipe cannot be resumed); the bytes written.
    The audio demuxed with the frames goes to the muxer before each chunk, which writes each packet before the
    chunk whose time it starts in."""
    from invrcodec.codec import container

    sink = common.CountingWriter(common.open_stdout())
    with container.open(sink, "w", header=encoder.header, audio=audio.streams) as out:
        for frame in encoder.clock.timed(reader, "read"):
            new = encoder.encode(frame)
            audio.feed(out)
            _emit(packets, new, out)
        audio.feed(out, final=True)
        _emit(packets, encoder.encode(None), out)
        if not packets:
            raise CliError(f"{reader.name}: no frames were encoded")
    audio.bytes_in_file = out.audio_bytes  # closed: the audio index and the last audio written
    sink.flush()
    return int(sink.count)


def _to_file(reader: Any, job: Any, dst: str, overwrite: bool | None, packets: list[tuple[int, float, int]],
             audio: _Audio) -> int:
    """Encode with every finished chunk kept in the journal OUT.part, then write OUT from it (through a
    temporary file) and delete the journal; the size of OUT. An interruption leaves the journal (README
    "Resuming"). The audio is not journalled: the source's, read again on a resume with the frames it checks,
    goes into OUT when OUT is written."""
    import os

    from invrcodec.codec import container

    clock = job.encoder.clock
    try:
        for frame in clock.timed(reader, "read"):
            _emit(packets, job.encode(frame))
        _emit(packets, job.encode(None))
    except BaseException:
        kept = job.close()
        if kept:
            log.info(f"{job.path}: {kept} finished chunk{'s' if kept > 1 else ''} kept; the same command "
                     "with --resume continues")
        raise
    if not packets:
        raise CliError(f"{reader.name}: no frames were encoded")
    sound = audio.feed(None, final=True)
    with clock.phase("write"), common.SafeOutput(dst, overwrite) as safe:
        with container.open(safe.target, "w", header=job.encoder.header, audio=audio.streams) as out:
            out.mux_audio(sound)
            for packet in job.packets():
                out.mux(packet)
        audio.bytes_in_file = out.audio_bytes
        safe.commit()
        job.remove()
    if job.kept:
        log.info(f"{job.kept} chunks kept from the interrupted encode, {len(packets) - job.kept} trained")
    return os.path.getsize(dst)


def _emit(packets: list[tuple[int, float, int]], new: list[Any], out: Any = None) -> None:
    for pkt in new:
        if out is not None:
            out.mux(pkt)
        packets.append((pkt.frame_count, pkt.train_psnr, pkt.size))


def _summary(info: Any, packets: list[tuple[int, float, int]], frames: int, elapsed: float, size: int,
             audio_bytes: int = 0) -> None:
    """The x264-style summary; with audio, the rate and bits per pixel are the video's (the file less what the
    audio takes)."""
    video = size - audio_bytes
    duration = frames / float(info.frame_rate) if info.frame_rate else 0.0
    kbps = video * 8 / duration / 1000 if duration > 0 else 0.0
    bpp = video * 8 / (frames * info.width * info.height)
    fps = frames / elapsed if elapsed > 0 else 0.0
    psnrs = [(n, p) for n, p, _ in packets if p is not None and math.isfinite(p)]
    without = f" ({video} without the audio)" if audio_bytes else ""
    log.info(
        f"encoded {frames} frames in {len(packets)} chunks, {elapsed:.2f} s, {fps:.2f} fps, "
        f"{size} bytes{without}, {kbps:.2f} kbit/s, {bpp:.4f} bpp"
    )
    if psnrs:
        from ..metrics import mean_of_psnrs, pooled_psnr

        counts, values = [n for n, _ in psnrs], [p for _, p in psnrs]
        log.info(
            f"PSNR (RGB) mean {mean_of_psnrs(values, counts):.2f} dB, min {min(values):.2f} dB, "
            f"max {max(values):.2f} dB (the mean of the chunks' PSNRs in dB, weighted by frames; "
            f"the PSNR of their pooled MSE is {pooled_psnr(values, counts):.2f} dB)"
        )


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``invr-enc``."""
    code = common.run_main(command, TOOL, argv)
    # The interpreter's garbage collections at exit walk every object torch.compile made (about a second);
    # frozen objects are still freed, only not searched for cycles.
    gc.freeze()
    common.exit_with(code)


if __name__ == "__main__":
    main(sys.argv[1:])
