"""invr-probe: what an .invr file holds, in ffprobe's words (docs: /work/shared/guide/CLI.md).

``invr-probe FILE`` prints a readable summary; ``-of json`` and ``-of default`` print ffprobe's shapes,
``-show_format`` / ``-show_streams`` pick sections (neither means both) and ``-show_chunks`` adds the chunk
table. Every chunk's CRC32 is checked, and every audio record's, so a damaged file fails here: exit 1 and one
line on stderr. Audio streams (format 2.1) are streams 1, 2, ... after the video, as ffprobe lists them. A
tiled file (format 3.0) shows its grid beside the representation, ``tiles 10x6 of 128x120``, and as
``invr.tiles``; a file whose tiles overlap (4.0) adds the overlap, ``tiles 10x6 of 128x120, overlap 8``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from fractions import Fraction
from dataclasses import dataclass
from typing import Any, BinaryIO

import click

from invrcodec.codec import container
from invrcodec.codec.container import InputContainer
from invrcodec.errors import InvrError
from invrcodec.metrics import mean_of_psnrs
from invrcodec.coding.payload import check_payload
from invrcodec.format import structs as fmt
from invrcodec.types import (
    AudioPacket,
    AudioStreamInfo,
    CoderKind,
    EncodingKind,
    Header,
    IndexEntry,
    NetworkKind,
    Prediction,
    StreamInfo,
)
from invrcodec.version import __version__

from . import common
from .run import EXIT_PIPE, quiet_stdout

TOOL = "invr-probe"
# ffprobe's -loglevel names: invr-enc's and invr-dec's, and panic, fatal and trace as ffprobe has them.
LOG_LEVELS = {
    "quiet": common.LOG_LEVELS["quiet"],
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    **{name: level for name, level in common.LOG_LEVELS.items() if name != "quiet"},
    "trace": logging.DEBUG,
}

log = logging.getLogger("invrcodec.cli.probe")

# FFmpeg's names for the ITU-T H.273 codes it uses (libavutil/pixdesc.c); unknown codes print as numbers.
_COLOR_RANGE = {1: "tv", 2: "pc"}
_COLOR_SPACE = {
    0: "gbr",
    1: "bt709",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    11: "smpte2085",
    14: "ictcp",
}
_COLOR_PRIMARIES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
_COLOR_TRC = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}

_CODER_NAMES = {
    CoderKind.DEEPCABAC: "DeepCABAC",
    CoderKind.RAW_FLOAT32: "raw float32",
    CoderKind.RAW_FLOAT16: "raw float16",
}


def _rational(q: Fraction, sep: str = "/") -> str:
    return f"{q.numerator}{sep}{q.denominator}"


def _seconds(q: Fraction) -> str:
    return f"{float(q):.6f}"


def _psnr(v: float) -> float | None:
    return round(v, 4) if math.isfinite(v) else None


@dataclass
class AudioTally:
    """One audio stream's packets as read: how many, their bytes, where they start and end (ticks)."""

    packets: int = 0
    bytes: int = 0
    start: int | None = None
    end: int | None = None

    def add(self, p: AudioPacket) -> None:
        self.packets += 1
        self.bytes += len(p.data)
        self.start = p.pts if self.start is None else min(self.start, p.pts)
        self.end = p.pts + p.duration if self.end is None else max(self.end, p.pts + p.duration)

    def seconds(self, tb: Fraction) -> tuple[Fraction, Fraction]:
        return (Fraction(self.start or 0) * tb, Fraction(self.end or 0) * tb)


def _channels(n: int) -> str:
    return f"{n} channel{'s' if n != 1 else ''}"


def _codec_long_name(codec: str) -> str:
    try:
        import av

        return str(av.Codec(codec, "r").long_name)
    except Exception:  # PyAV absent or a codec its FFmpeg does not know: the short name says enough
        return codec


def audio_stream(i: int, a: AudioStreamInfo, tally: AudioTally) -> dict[str, Any]:
    """ffprobe's stream object for audio stream ``i`` of the file (stream ``i + 1`` after the video)."""
    start, end = tally.seconds(a.time_base)
    duration = end - start
    return {
        "index": i + 1,
        "codec_name": a.codec,
        "codec_long_name": _codec_long_name(a.codec),
        "codec_type": "audio",
        "sample_rate": str(a.sample_rate),
        "channels": a.channels,
        "channel_layout": a.channel_layout,
        "time_base": _rational(a.time_base),
        "start_pts": tally.start or 0,
        "start_time": _seconds(start),
        "duration_ts": (tally.end or 0) - (tally.start or 0),
        "duration": _seconds(duration),
        "bit_rate": _bit_rate(tally.bytes, duration),
        "nb_frames": str(tally.packets),
        "extradata_size": len(a.extradata),
        "tags": {},
        "invr": {"audio_stream": i, "stored": "stream copy", "packets": tally.packets, "bytes": tally.bytes,
                 "frame_size": a.frame_size, "declared_bit_rate": a.bit_rate},
    }


def probe(f: InputContainer, filename: str, show_chunks: bool,
          audio: list[AudioTally] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """ffprobe's stream and format objects for an opened file whose chunks have all been verified (``audio``:
    what its audio streams' packets came to)."""
    s, index = f.header.stream, f.index
    duration = s.duration
    stream = _stream_section(s)
    stream.update(
        {
            "r_frame_rate": _rational(s.frame_rate),
            "avg_frame_rate": _rational(s.frame_rate),
            "time_base": _rational(s.time_base),
            "start_pts": 0,
            "start_time": _seconds(Fraction(0)),
            "duration_ts": int(duration / s.time_base),
            "duration": _seconds(duration),
            "bit_rate": _bit_rate(sum(e.size for e in index), duration),
            "nb_frames": str(s.frame_count),
            "tags": {},
            "invr": _invr_section(f, show_chunks),
        }
    )
    size = f.size or 0
    encoder = f.header.metadata.encoder
    tallies = audio if audio is not None else [AudioTally() for _ in f.audio_streams]
    ends = [tally.seconds(a.time_base)[1] for a, tally in zip(f.audio_streams, tallies) if tally.packets]
    duration = max([duration, *ends])
    fmt: dict[str, Any] = {
        "filename": filename,
        "nb_streams": 1 + len(f.audio_streams),
        "nb_programs": 0,
        "format_name": "invr",
        "format_long_name": "INVR (implicit neural video representation)",
        "start_time": _seconds(Fraction(0)),
        "duration": _seconds(duration),
        "size": str(size),
        "bit_rate": _bit_rate(size, duration),
        "probe_score": 100,
        "tags": {"encoder": encoder} if encoder else {},
    }
    return stream, fmt


def _bit_rate(size: int, duration: Fraction) -> str:
    return str(int(size * 8 / duration)) if duration else "0"


def _stream_section(s: StreamInfo) -> dict[str, Any]:
    """The stream object's picture facts: size, aspect ratios and the colour tags FFmpeg has names for."""
    sar = s.sample_aspect_ratio
    dar = Fraction(s.width * sar.numerator, s.height * sar.denominator) if sar else Fraction(0)
    stream: dict[str, Any] = {
        "index": 0,
        "codec_name": "invr",
        "codec_long_name": "INVR (implicit neural video representation)",
        "codec_type": "video",
        "width": s.width,
        "height": s.height,
        "pix_fmt": s.pix_fmt,
        "sample_aspect_ratio": _rational(sar, ":"),
        "display_aspect_ratio": _rational(dar, ":"),
    }
    for key, code, names in (
        ("color_range", s.color_range, _COLOR_RANGE),
        ("color_space", s.color_space, _COLOR_SPACE),
        ("color_transfer", s.color_trc, _COLOR_TRC),
        ("color_primaries", s.color_primaries, _COLOR_PRIMARIES),
    ):
        if code in names:
            stream[key] = names[code]
    return stream


def _tiles_section(h: Header) -> dict[str, Any] | None:
    """The ``invr.tiles`` object of a tiled file (None without a tile grid): the tile size, the pixels each
    tile's network reaches into its neighbours (0 in a 3.x file), the grid's columns and rows (the last of
    each may be narrower: spec "Tiles") and the networks per chunk."""
    if h.tiles is None:
        return None
    s = h.stream
    return {
        "tile_width": h.tiles.tile_width,
        "tile_height": h.tiles.tile_height,
        "overlap": h.tiles.overlap,
        "columns": len(h.tiles.columns(s.width)),
        "rows": len(h.tiles.rows(s.height)),
        "count": fmt.tile_count(h),
        "chunk_parameters": fmt.tile_count(h) * h.representation.parameter_count,
    }


def _invr_section(f: InputContainer, show_chunks: bool) -> dict[str, Any]:
    """The stream's ``invr`` object: what ffprobe has no words for (representation, coder, chunks)."""
    r, k, m = f.header.representation, f.header.coder, f.header.metadata
    index: list[IndexEntry] = f.index
    psnrs = [e.train_psnr for e in index]
    finite = [e for e in index if math.isfinite(e.train_psnr)]
    tiles = _tiles_section(f.header)
    invr: dict[str, Any] = {
        "format_version": f"{f.version[0]}.{f.version[1]}",
        "representation": {
            "network": r.network.name.lower(),
            "hidden": r.hidden,
            "layers": r.layers,
            "w0": r.w0,
            "encoding": r.encoding.name.lower(),
            "lx": r.enc_dims[0],
            "ly": r.enc_dims[1],
            "lt": r.enc_dims[2],
            "sigma": r.sigma,
            "prepend_coord": r.prepend_coord,
            "coords": r.coords.name.lower(),
            "chunk_frames": r.chunk_frames,
            "parameters": r.parameter_count,
        },
        **({"tiles": tiles} if tiles is not None else {}),
        "coder": {
            "kind": k.kind.name.lower(),
            "nncodec_version": k.nncodec_version,
            "qp_density": k.qp_density,
            "dependent_quantization": k.dependent_quantization,
            "cabac_unary_length_minus1": k.cabac_unary_length_minus1,
        },
        "metadata": {"encoder": m.encoder, "settings": m.settings},
        "nb_chunks": len(index),
        "nb_key_chunks": sum(e.prediction == Prediction.KEY for e in index),
        "train_psnr": {
            "mean": _psnr(mean_of_psnrs([e.train_psnr for e in finite], [e.frame_count for e in finite]))
            if finite else None,
            "min": _psnr(min(psnrs)) if psnrs else None,
            "max": _psnr(max(psnrs)) if psnrs else None,
        },
    }
    if show_chunks:
        invr["chunks"] = [_chunk_row(i, e) for i, e in enumerate(index)]
    return invr


def _chunk_row(i: int, e: IndexEntry) -> dict[str, Any]:
    """One row of ``-show_chunks``."""
    return {
        "index": i,
        "first_frame": e.first_frame,
        "frame_count": e.frame_count,
        "offset": e.offset,
        "size": e.size,
        "crc32": f"0x{e.crc32:08x}",
        "train_psnr": _psnr(e.train_psnr),
        "prediction": e.prediction.name.lower(),
    }


def _flatten(prefix: str, d: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in d.items():
        if isinstance(value, dict):
            out += _flatten(f"{prefix}{key}.", value)
        elif not isinstance(value, list):
            out.append((f"{prefix}{key}", value))
    return out


def _value(v: Any) -> str:
    if v is None:
        return "N/A"
    if isinstance(v, bool):
        return str(int(v))
    return str(v)


def _stream_block(stream: dict[str, Any]) -> list[str]:
    """One stream's ``[STREAM]`` block: key=value lines, tags as ``TAG:key``, INVR facts as ``INVR:key``."""
    lines = ["[STREAM]"]
    for key, value in stream.items():
        if key == "tags":
            lines += [f"TAG:{k}={_value(v)}" for k, v in value.items()]
        elif key == "invr":
            lines += [f"INVR:{k}={_value(v)}" for k, v in _flatten("", value)]
        else:
            lines.append(f"{key}={_value(value)}")
    return lines + ["[/STREAM]"]


def render_default(stream: dict[str, Any] | None, fmt: dict[str, Any] | None,
                   audio: list[dict[str, Any]] | None = None) -> str:
    """ffprobe's ``-of default``: ``[SECTION]`` blocks of key=value lines; tags as ``TAG:key``."""
    lines: list[str] = []
    audio = audio or []
    if stream is not None:
        for chunk in stream["invr"].get("chunks", []):
            lines.append("[CHUNK]")
            lines += [f"{k}={_value(v)}" for k, v in chunk.items()]
            lines.append("[/CHUNK]")
        lines += _stream_block(stream)
    for a in audio:
        lines += _stream_block(a)
    if fmt is not None:
        lines.append("[FORMAT]")
        for key, value in fmt.items():
            if key == "tags":
                lines += [f"TAG:{k}={_value(v)}" for k, v in value.items()]
            else:
                lines.append(f"{key}={_value(value)}")
        lines.append("[/FORMAT]")
    return "\n".join(lines) + "\n"


def _clock(seconds: float) -> str:
    cs = round(seconds * 100)
    return f"{cs // 360000:02d}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def render_summary(f: InputContainer, stream: dict[str, Any], fmt: dict[str, Any],
                   audio: list[dict[str, Any]] | None = None) -> str:
    """The readable summary, in the manner of ffprobe's banner."""
    h = f.header
    s, r, k, m = h.stream, h.representation, h.coder, h.metadata
    inv = stream["invr"]
    fps = float(s.frame_rate)
    fps_text = f"{fps:.4g}" if s.frame_rate.denominator != 1 else str(s.frame_rate.numerator)
    if r.network == NetworkKind.SIREN:
        net = f"SIREN {r.layers}x{r.hidden}, w0={r.w0:g}"
    else:
        net = f"{r.network.name} {r.layers}x{r.hidden}"
    enc = r.encoding.name.lower()
    if r.encoding != EncodingKind.NONE:
        enc += f" {r.enc_dims[0]}/{r.enc_dims[1]}/{r.enc_dims[2]} sigma={r.sigma:g}"
    if r.prepend_coord:
        enc += " +xyt"
    tiles = inv.get("tiles")
    if tiles is not None:
        enc += f"; tiles {tiles['columns']}x{tiles['rows']} of {tiles['tile_width']}x{tiles['tile_height']}"
        if tiles["overlap"]:
            enc += f", overlap {tiles['overlap']}"
    coder = _CODER_NAMES.get(k.kind, k.kind.name)
    if k.kind == CoderKind.DEEPCABAC:
        coder += (
            f" (nncodec {k.nncodec_version or '?'}), qp_density {k.qp_density}, "
            f"dependent quantisation {'on' if k.dependent_quantization else 'off'}"
        )
    size = int(fmt["size"])
    kbps = int(fmt["bit_rate"]) / 1000
    psnr = inv["train_psnr"]
    lines = [
        f"Input #0, invr, from '{fmt['filename']}':",
        f"  Duration: {_clock(float(s.duration))}, size: {size} bytes, bitrate: {kbps:.1f} kb/s",
        f"  Format: INVR {inv['format_version']}" + (f", encoder: {m.encoder}" if m.encoder else ""),
        (
            f"  Stream #0:0: Video: invr ({net}; {enc}), {s.width}x{s.height} "
            f"[SAR {stream['sample_aspect_ratio']} DAR {stream['display_aspect_ratio']}], "
            f"source {s.pix_fmt}, {fps_text} fps, {s.frame_count} frames"
        ),
        f"  Weights: {coder}; {r.parameter_count} parameters per "
        + (f"tile, {tiles['chunk_parameters']} per chunk" if tiles is not None else "chunk"),
        f"  Chunks: {inv['nb_chunks']} of up to {r.chunk_frames} frames, {inv['nb_key_chunks']} key"
        + (
            f", train PSNR mean {psnr['mean']:.2f} dB (min {psnr['min']:.2f}, max {psnr['max']:.2f})"
            if psnr["mean"] is not None and psnr["min"] is not None and psnr["max"] is not None
            else ""
        ),
    ]
    for a in audio or []:
        start, end = Fraction(a["start_time"]), Fraction(a["start_time"]) + Fraction(a["duration"])
        kbps = int(a["bit_rate"]) / 1000
        lines.append(
            f"  Stream #0:{a['index']}: Audio: {a['codec_name']}, {a['sample_rate']} Hz, "
            f"{a['channel_layout'] or _channels(a['channels'])}, {kbps:.1f} kb/s, {a['nb_frames']} packets "
            f"from {float(start):.3f} s to {float(end):.3f} s (stream copy of the source's)"
        )
    if m.settings:
        lines.append(f"  Settings: {m.settings}")
    return "\n".join(lines) + "\n"


def _stdin() -> BinaryIO:
    return sys.stdin.buffer


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", metavar="FILE")
@click.option(
    "-of",
    "-print_format",
    "output_format",
    type=click.Choice(["default", "json"]),
    default=None,
    help="Print sections as ffprobe does (default: a readable summary).",
)
@click.option("-show_format", "show_format", is_flag=True, help="Show the format section.")
@click.option("-show_streams", "show_streams", is_flag=True, help="Show the stream section.")
@click.option(
    "-show_chunks",
    "show_chunks",
    is_flag=True,
    help="Add the chunk table (first frame, frames, offset, size, CRC32, training PSNR).",
)
@click.option(
    "-v",
    "-loglevel",
    "--loglevel",
    "loglevel",
    type=click.Choice(list(LOG_LEVELS)),
    default="error",
    show_default=True,
    help="Messages on stderr; 'debug' adds tracebacks.",
)
@click.version_option(
    __version__, "--version", "-version", prog_name=TOOL, message="%(prog)s %(version)s"
)
def main(
    file: str,
    output_format: str | None,
    show_format: bool,
    show_streams: bool,
    show_chunks: bool,
    loglevel: str,
) -> None:
    """Describe the .invr FILE ('-' reads standard input), checking every chunk's CRC32."""
    level = LOG_LEVELS[loglevel]
    common.route_logs(TOOL, level, tracebacks=level <= logging.DEBUG)
    try:
        source: str | BinaryIO = _stdin() if file == "-" else file
        with container.open(source) as f:
            tallies = [AudioTally() for _ in f.audio_streams]
            for packet in f.demux(audio=True):  # verifies every CRC; a pipe is read through to its index
                if isinstance(packet, AudioPacket):
                    tallies[packet.stream].add(packet)
                else:
                    check_payload(packet, f.header, f"chunk {packet.index}")  # and that every tensor decodes
            stream, fmt = probe(f, file, show_chunks, tallies)
            audio = [audio_stream(i, a, t) for i, (a, t) in enumerate(zip(f.audio_streams, tallies))]
            if output_format is None and not (show_format or show_streams or show_chunks):
                text = render_summary(f, stream, fmt, audio)
            else:
                both = not (show_format or show_streams)
                want_stream = both or show_streams or show_chunks
                want_format = both or show_format
                if output_format == "json":
                    out: dict[str, Any] = {}
                    if want_stream:
                        out["streams"] = [stream, *audio]
                    if want_format:
                        out["format"] = fmt
                    text = json.dumps(out, indent=4, allow_nan=False) + "\n"
                else:
                    text = render_default(stream if want_stream else None, fmt if want_format else None, audio
                                          if want_stream else [])
    except (InvrError, OSError) as e:
        message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        if level <= logging.DEBUG:
            log.debug("traceback", exc_info=True)
        if level <= logging.CRITICAL:
            click.echo(f"{TOOL}: error: {file}: {message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    try:
        click.echo(text, nl=False)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`invr-probe a.invr | head -1`): end quietly with the shell's SIGPIPE status.
        quiet_stdout()
        sys.exit(EXIT_PIPE)


if __name__ == "__main__":  # pragma: no cover
    main()
