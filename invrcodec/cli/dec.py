"""invr-dec: decode an .invr file to a video file or to stdout (Y4M by default, so ``| ffplay -`` works).

A thin command: the demuxer/decoder (:func:`invrcodec.open`) yields RGB frames, :mod:`invrcodec.media.pyav`
writes them in the format the output's extension (or ``-f``) asks for. The file's audio goes into the output
by stream copy where the output takes its codec, re-encoded to the output's usual audio codec where it does
not, and not at all into Y4M or raw video (or with ``-an``); each case is said once.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import click

from ..codec.guard import DEFAULT_MAX_PIXELS
from . import common
from .common import CliError

log = logging.getLogger("invrcodec.cli.dec")

TOOL = "invr-dec"
BOUNDARIES = ["crossfade", "blend", "nearest", "hold"]  # sampling.BOUNDARIES (a test keeps them equal)


def _size(text: str) -> tuple[int, int]:
    from ..media.pyav import parse_size
    from ..codec.sampling import MAX_DIMENSION

    w, h = parse_size(text)
    if w > MAX_DIMENSION or h > MAX_DIMENSION:
        raise ValueError(f"{text!r}: width and height must be at most {MAX_DIMENSION} (the format's limit)")
    return w, h


def _scale(text: str) -> Any:
    from ..codec.sampling import parse_scale

    return _size(text) if "x" in text.lower() else parse_scale(text)


def _crop(text: str) -> Any:
    from ..codec.sampling import Region

    return Region.parse(text)


def _rate(text: str) -> Any:
    from ..codec.sampling import parse_rate

    return parse_rate(text)


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Examples:\n\n\b\n  invr-dec in.invr out.mp4\n  invr-dec in.invr - | ffplay -autoexit -\n"
    "  invr-dec -f rawvideo --pix-fmt rgb24 in.invr - > frames.rgb\n"
    "  invr-dec --seek 30 --frames 15 in.invr part.y4m\n"
    "  invr-dec --size 256x256 in.invr - | ffplay -autoexit -\n"
    "  invr-dec --fps 50 --crop 64:64:32:32 --scale 2 in.invr detail.mkv",
)
@click.argument("input", metavar="IN")
@click.argument("output", metavar="OUT")
@click.option("-f", "--format", "fmt", default=None, metavar="FORMAT",
              help="Output format (yuv4mpegpipe/y4m, rawvideo, matroska, mp4, nut, ...); default from OUT's "
              "extension, Y4M for stdout.")
@click.option("--pix-fmt", default=None, metavar="FMT",
              help="Output pixel format (yuv420p, yuv444p, rgb24, ...); default follows the source "
              "(rgb24 for rawvideo).")
@click.option("--seek", type=click.IntRange(min=0), default=0, metavar="N", help="Start at frame N.")
@click.option("--frames", type=click.IntRange(min=1), default=None, metavar="N", help="Decode only N frames.")
@click.option("-s", "--size", callback=common.parsed(_size), default=None, metavar="WxH",
              help="Render at this size: the networks sampled between their pixels (spec: \"Sampling at "
              "another size, time or region\").")
@click.option("--scale", callback=common.parsed(_scale), default=None, metavar="F|WxH",
              help="Render at F times the size (2, 0.5, 3/2), or at WxH as --size.")
@click.option("--crop", callback=common.parsed(_crop), default=None, metavar="W:H:X:Y",
              help="Render only this rectangle of source pixels (at its size, or as --size/--scale say).")
@click.option("-r", "--fps", "rate", callback=common.parsed(_rate), default=None, metavar="RATE",
              help="Render at this frame rate (60, 30000/1001), sampling between the stored frames; "
              "--frames then counts output frames.")
@click.option("--chunk-boundary", type=click.Choice(BOUNDARIES), default="crossfade", show_default=True,
              help="With --fps, an instant between two chunks: mix their two stored frames, mix both "
              "networks at the instant, take the nearer network, or hold the nearer frame.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              metavar="N", help="Refuse frames of more than N pixels (a small file can declare huge frames).")
@click.option("--device", default="cpu", show_default=True, callback=common.parse_device,
              metavar="auto|cpu|cuda[:N]", help="Where to run the networks.")
@click.option("-an", "no_audio", is_flag=True,
              help="Leave the audio out (by default it is copied into OUT, or re-encoded where OUT's format "
              "does not take its codec; Y4M and raw video carry none).")
@common.threads_option
@common.common_options
def command(
    input: str,
    output: str,
    fmt: str | None,
    pix_fmt: str | None,
    seek: int,
    frames: int | None,
    size: tuple[int, int] | None,
    scale: Fraction | tuple[int, int] | None,
    crop: Any,
    rate: Any,
    chunk_boundary: str,
    max_pixels: int,
    device: str,
    no_audio: bool,
    threads: int,
    tool: common.ToolOptions,
) -> int:
    """Decode IN (.invr, or - for stdin) into OUT (a video file, or - for stdout)."""
    if size is not None and scale is not None:
        raise click.UsageError("--size and --scale contradict each other; give one")
    if isinstance(scale, tuple):
        size, scale = scale, None
    request = DecodeRequest(
        input=input, output=output, tool=tool, format=fmt, pix_fmt=pix_fmt, seek=seek, frames=frames,
        size=size, scale=scale, crop=crop, rate=rate, chunk_boundary=chunk_boundary, max_pixels=max_pixels,
        device=device, threads=threads, audio=not no_audio,
    )
    tool.setup_logging(TOOL)
    return common.execute(TOOL, lambda: _decode(request))


@dataclass(frozen=True)
class DecodeRequest:
    """What invr-dec was asked, built once from its options (their help says what each is)."""

    input: str
    output: str
    tool: common.ToolOptions  # -y/-n, -v/-q/--loglevel, --no-progress
    format: str | None
    pix_fmt: str | None
    seek: int
    frames: int | None
    size: tuple[int, int] | None
    scale: Fraction | None
    crop: Any  # sampling.Region
    rate: Fraction | None
    chunk_boundary: str
    max_pixels: int
    device: str
    threads: int
    audio: bool = True  # not -an


def _decode(req: DecodeRequest) -> int:
    src, dst = req.input, req.output
    stdin_used = src == "-"
    from ..media.pyav import choose_output_format

    fmt = choose_output_format(None if dst == "-" else dst, req.format)
    if src != "-" and dst != "-" and common.same_file(src, dst):
        raise CliError(f"{dst}: output is the same file as the input")
    common.check_output(dst, req.tool.overwrite, stdin_in_use=stdin_used)

    from invrcodec.codec import container
    from invrcodec.errors import InvrError
    from invrcodec.hostmem import keep_freed_memory

    common.apply_threads(req.threads)
    keep_freed_memory()
    name = "stdin" if stdin_used else src
    source: Any = common.open_stdin("pipe an .invr stream in") if stdin_used else src
    if not stdin_used:
        if os.path.isdir(src):
            raise CliError(f"{src}: is a directory")
        if not os.path.exists(src):
            raise CliError(f"{src}: No such file or directory")
    held = common.HeldInfo()  # from here: what the reader says on opening (a newer minor version) waits too
    try:
        reader = container.open(source)
    except InvrError as exc:
        held.drop()
        raise CliError(f"{name}: {exc}") from exc
    except OSError as exc:
        held.drop()
        if common.is_broken_pipe(exc):
            raise
        raise CliError(f"{name}: {exc.strerror or exc}") from exc
    with reader:
        return _decode_from(reader, name, fmt, req, held)


def _total_frames(reader: Any) -> int:
    """Frames in the file: exact once the index is known (always on a seekable input), else 0 or the header's."""
    return int(reader.header.stream.frame_count)


def _resampling(info: Any, total: int, name: str, req: DecodeRequest,
                wanted: int) -> tuple[dict[str, Any], Any, int]:
    """decode()'s size/region/rate arguments, the output's stream facts and its frame count, checked
    against the file (a crop outside the frame, an output beyond the format's limits: exit 1)."""
    asked = {"size": req.size, "scale": req.scale, "region": req.crop, "rate": req.rate}
    if all(v is None for v in asked.values()):
        return {}, info, wanted
    from invrcodec.errors import InvrConfigError
    from invrcodec.codec.sampling import Timeline, output_info, plan_geometry

    try:
        geometry = plan_geometry(info.width, info.height, size=asked["size"], scale=asked["scale"],
                                 region=asked["region"])
        timeline = Timeline(info.frame_rate, req.seek, req.frames, req.rate, req.chunk_boundary)
        wanted = timeline.count(total) if total else (req.frames or 0)
    except InvrConfigError as exc:
        raise CliError(f"{name}: {exc}") from exc
    out = output_info(info, geometry, asked["rate"])
    r = out.frame_rate
    log.info(f"rendering {geometry.region.width}x{geometry.region.height} at {geometry.region.x},"
             f"{geometry.region.y} as {out.width}x{out.height} @ {r.numerator}/{r.denominator} fps, "
             f"{wanted or 'all'} frames")
    return {**asked, "boundary": req.chunk_boundary}, out, wanted


def _check_work(reader: Any, info: Any, wanted: int, name: str, req: DecodeRequest) -> None:
    """Refuse frames over --max-pixels, then (on a seekable input) read and check every chunk the decode
    needs, so that a damaged or crafted file is refused before anything is written."""
    from invrcodec.errors import InvrError, InvrLimitError
    from invrcodec.codec.guard import check_frame_size
    from invrcodec.coding.payload import check_payload

    try:
        check_frame_size(info.width, info.height, wanted, reader.header.representation, req.max_pixels)
    except InvrLimitError as exc:
        raise CliError(f"{name}: {exc}; raise --max-pixels to decode it") from exc
    if reader.seekable:
        try:
            span = (0, None) if req.rate else (req.seek, req.frames)  # --fps: frames of its own
            for packet in reader.demux(*span):
                check_payload(packet, reader.header, f"chunk {packet.index}")
            for _ in reader.demux_audio(req.seek, req.frames, req.rate):  # each record checked, used or not
                pass
        except InvrError as exc:
            raise CliError(f"{name}: {exc}") from exc


def _say_audio(writer: Any, streams: tuple[Any, ...], name: str, fmt: Any) -> None:
    """One line per audio stream: what becomes of it in the output (a warning where it is re-encoded, or left
    out of an output that could carry it)."""
    for i, (a, route) in enumerate(zip(streams, writer.audio_plan)):
        line = f"{name}: audio stream {i} ({a.describe()}): {route.says}"
        loses = route.kind == "transcode" or (route.kind == "none" and not fmt.raw)
        (log.warning if loses else log.info)(line)


def _decode_from(reader: Any, name: str, fmt: Any, req: DecodeRequest, held: Any) -> int:
    """``held``: the info lines held back until the first frame, so that a run that fails before it says so in
    one line."""
    from invrcodec.errors import InvrError

    from ..media.pyav import VideoWriter

    info = reader.header.stream
    total = _total_frames(reader)
    seek, count = req.seek, req.frames
    if total and seek >= total:
        raise CliError(f"{name}: --seek {seek} is past the last frame (the file has {total} frames)")
    wanted = (min(count, total - seek) if count else total - seek) if total else (count or 0)
    rate = info.frame_rate
    log.info(
        f"{name}: {info.width}x{info.height} @ {rate.numerator}/{rate.denominator} fps, "
        f"{total or 'unknown'} frames; writing {wanted or 'all'} frames from frame {seek}"
    )
    resample, info, wanted = _resampling(info, total, name, req, wanted)
    _check_work(reader, info, wanted, name, req)
    audio = reader.audio_streams if req.audio else ()
    if reader.audio_streams and not req.audio:
        log.info(f"{name}: audio left out (-an)")
    audio_offset = Fraction(seek) / rate  # the first frame's time on the audio's clock
    dst = req.output
    ext = os.path.splitext(dst)[1].lower() if dst != "-" else ""
    status = common.status_line(req.tool.progress and logging.getLogger("invrcodec").isEnabledFor(logging.INFO))
    start = time.monotonic()
    written = 0

    def pump(writer: Any) -> int:
        from invrcodec.types import AudioPacket

        n = 0
        last = 0.0
        try:
            frames = reader.decode(first_frame=seek, frame_count=count, device=req.device,
                                   audio=writer.takes_audio, **resample)
            for rgb in frames:
                if isinstance(rgb, AudioPacket):
                    writer.write_audio(rgb)
                    continue
                if n == 0:
                    held.release()
                writer.write(rgb)
                n += 1
                now = time.monotonic()
                if status is not None and now - last > 0.2:
                    last = now
                    el = now - start
                    tot = f"/{wanted}" if wanted else ""
                    status.show(f"frame {n}{tot}  {n / el if el > 0 else 0:.1f} fps")
        except InvrError as exc:
            if common.is_broken_pipe(exc):
                raise
            raise CliError(f"{name}: {exc}") from exc
        return n

    def write_all(writer: Any) -> int:
        """Every frame into ``writer``, closed when whole and aborted otherwise; refuses no frames at all."""
        try:
            n = pump(writer)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        if n == 0:
            raise CliError(f"{name}: no frames decoded")
        return n

    try:
        if dst == "-":
            out = common.open_stdout()
            writer = VideoWriter(out, info, fmt, pix_fmt=req.pix_fmt, name="stdout", audio=audio,
                                 audio_offset=audio_offset)
            _say_audio(writer, audio, name, fmt)
            written = write_all(writer)
            out.flush()
        else:
            with common.SafeOutput(dst, req.tool.overwrite) as safe:
                writer = VideoWriter(safe.target, info, fmt, pix_fmt=req.pix_fmt, name=dst, ext=ext,
                                     audio=audio, audio_offset=audio_offset)
                _say_audio(writer, audio, name, fmt)
                written = write_all(writer)
                safe.commit()
    finally:
        held.drop()
        if status is not None:
            status.clear()
    elapsed = time.monotonic() - start
    fps = written / elapsed if elapsed > 0 else 0.0
    target = "stdout" if dst == "-" else dst
    n = writer.audio_packets
    sound = f", {n} audio packet{'s' if n != 1 else ''}" if n else ""
    log.info(
        f"decoded {written} frames, {elapsed:.2f} s, {fps:.2f} fps -> {target} "
        f"({fmt.format}, {writer.pix_fmt}){sound}"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``invr-dec``."""
    common.exit_with(common.run_main(command, TOOL, argv))


if __name__ == "__main__":
    main(sys.argv[1:])
