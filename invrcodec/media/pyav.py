"""Reading source video and writing decoded video, through PyAV (FFmpeg's libraries).

INVR codes RGB frames, so this module is the boundary between FFmpeg's world (containers, codecs, YUV pixel
formats, colour tags) and the codec's (``numpy.uint8`` arrays of shape ``(H, W, 3)``):

* :class:`VideoReader` opens anything FFmpeg reads, or a Y4M stream on stdin, and yields RGB frames one at a
  time, so memory does not grow with the length of the video. It describes the source as a
  :class:`~invrcodec.types.StreamInfo` and lists the streams it leaves behind (subtitles, more audio). Asked
  to (``audio=True``), it keeps the first audio stream's compressed packets as they are, timed from the first
  frame it yields (:meth:`VideoReader.take_audio`).
* :class:`VideoWriter` turns RGB frames back into a file or a pipe; the format follows the file's extension,
  and a pipe gets Y4M unless told otherwise (``rawvideo``, ``matroska``, ``nut``...). Given audio streams, it
  muxes their packets by stream copy where the output takes the codec, and re-encodes them to the output's
  usual audio codec where it does not.

Everything that goes wrong with media is raised as :class:`~invrcodec.errors.InvrMediaError` whose message
starts with the input's or output's name.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

from . import y4m
from ..errors import InvrError, InvrMediaError
from ..fileio import is_seekable
from ..format import rules
from ..types import AudioPacket, AudioStreamInfo, StreamInfo

log = logging.getLogger(__name__)

__all__ = [
    "AudioRoute",
    "OtherStream",
    "OutputFormat",
    "VideoReader",
    "VideoWriter",
    "audio_plan",
    "choose_output_format",
    "open_video",
    "parse_size",
]

Y4M_MAGIC = b"YUV4MPEG2"

# FFmpeg AVColorSpace (ITU-T H.273 matrix) -> the swscale matrix PyAV's reformat takes (SWS_CS_*).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


@dataclass(frozen=True)
class OtherStream:
    """A stream of the source: one INVR does not store (subtitles, data, a second video, a second audio), or
    the audio stream it keeps."""

    index: int
    kind: str  # "audio", "subtitle", "data", "video", "attachment"
    codec: str
    why: str = ""  # why an audio stream that could have been kept was not

    def describe(self) -> str:
        return f"stream #{self.index} ({self.kind}, {self.codec})"


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``128x128``) into ``(width, height)``; :class:`ValueError` if malformed."""
    parts = text.lower().replace(":", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a size like 128x128")
    w, h = int(parts[0]), int(parts[1])
    if w < 1 or h < 1:
        raise ValueError(f"{text!r}: width and height must be at least 1")
    return w, h


class _Prefixed(io.RawIOBase):
    """A readable stream that first replays bytes already taken from ``inner`` (used to sniff stdin)."""

    def __init__(self, prefix: bytes, inner: BinaryIO) -> None:
        self._prefix = prefix
        self._inner = inner
        self.delivered = 0  # bytes handed on so far: the stream's size once it is read to its end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            self.delivered += n
            return n
        data = self._inner.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        self.delivered += len(data)
        return len(data)


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    chunks = b""
    while len(chunks) < n:
        data = stream.read(n - len(chunks))
        if not data:
            break
        chunks += data
    return chunks


_AV_INT_MAX = (1 << 31) - 1  # FFmpeg's AVRational has int terms


def _av_rational(q: Fraction, what: str, name: str) -> Fraction:
    """``q`` if FFmpeg can hold it, else the nearest fraction whose terms fit in an int (with a warning): an
    .invr file's u32 terms can be larger (a crafted 2648623550/1001 fps once ended in an OverflowError)."""
    if q.numerator <= _AV_INT_MAX and q.denominator <= _AV_INT_MAX:
        return q
    near = min(q.limit_denominator(_AV_INT_MAX), Fraction(_AV_INT_MAX))
    if near.numerator > _AV_INT_MAX:
        near = 1 / (1 / near).limit_denominator(_AV_INT_MAX)
    if near == 0:
        near = Fraction(1, _AV_INT_MAX)
    log.warning("%s: %s %s does not fit FFmpeg's 32-bit fractions; writing %s", name, what, q, near)
    return near


def _read_line(stream: BinaryIO, limit: int) -> bytes:
    """Bytes up to and including the next newline, at most ``limit`` of them (a Y4M header's rest)."""
    out = b""
    while len(out) < limit and not out.endswith(b"\n"):
        byte = stream.read(1)
        if not byte:
            break
        out += byte
    return out


def _av_message(exc: BaseException) -> str:
    """A short human text for an FFmpeg / OS error (no errno numbers, no repeated file name)."""
    if isinstance(exc, av.FFmpegError):
        return str(getattr(exc, "strerror", None) or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


@dataclass(frozen=True)
class _Sniffed:
    """What opening a source found before FFmpeg sees it: what to open, and a Y4M stream's header."""

    target: str | BinaryIO
    format: str | None = None  # FFmpeg's demuxer, when the magic told it (a pipe)
    y4m: y4m.Y4MHeader | None = None
    stream_size: Callable[[], int] | None = None  # a Y4M source's bytes so far, to describe a cut frame


def _sniff(source: str | os.PathLike[str] | BinaryIO, fail: Callable[[str], InvrMediaError]) -> _Sniffed:
    """Check that ``source`` can be read and recognise a Y4M stream by its magic (a pipe is read ahead
    only that far, and what was read is replayed to FFmpeg)."""

    def y4m_header(head: bytes) -> y4m.Y4MHeader:
        try:
            return y4m.parse_header(head)
        except ValueError as exc:
            raise fail(str(exc)) from exc

    if source == "-" or not isinstance(source, (str, os.PathLike)):
        stream = _stdin_binary() if source == "-" else source
        assert not isinstance(stream, (str, os.PathLike))
        if source == "-" and hasattr(stream, "isatty") and stream.isatty():
            raise fail("is a terminal; pipe a Y4M stream in (e.g. ffmpeg -i in.mp4 -f yuv4mpegpipe -)")
        head = _read_exactly(stream, len(Y4M_MAGIC))
        if not head:
            raise fail("empty input (expected a Y4M stream)")
        header = None
        if head == Y4M_MAGIC:
            head += _read_line(stream, y4m.HEADER_LINE_MAX - len(head))
            header = y4m_header(head)
        prefixed = _Prefixed(head, stream)
        target = io.BufferedReader(prefixed, buffer_size=1 << 16)  # type: ignore[arg-type]
        return _Sniffed(target, "yuv4mpegpipe" if header else None, header, lambda: prefixed.delivered)
    path = os.fspath(source)
    if os.path.isdir(path):
        raise fail("is a directory")
    if not os.path.exists(path):
        raise fail("No such file or directory")
    if not os.access(path, os.R_OK):
        raise fail("Permission denied")
    head = b""
    if os.path.isfile(path):  # never read ahead from a named pipe: those bytes would be lost
        with open(path, "rb") as fh:
            head = fh.read(y4m.HEADER_LINE_MAX)
    if head.startswith(Y4M_MAGIC):
        return _Sniffed(path, None, y4m_header(head), lambda: os.path.getsize(path))
    return _Sniffed(path)


def _codec_name(s: av.stream.Stream) -> str:
    """FFmpeg's name of a stream's codec (its descriptor's: ``mp3``, not the decoder ``mp3float``)."""
    if s.codec_context is None:
        return "unknown"
    return str(getattr(s.codec_context.codec, "canonical_name", None) or s.codec_context.name)


def describe_audio(s: av.stream.Stream) -> AudioStreamInfo:
    """The AudioStreamInfo of a source's audio stream (:class:`InvrMediaError` when it has no codec)."""
    cc = s.codec_context
    if cc is None:
        raise InvrMediaError("FFmpeg does not know its codec")
    layout = cc.layout.name if cc.layout is not None else ""
    return AudioStreamInfo(
        codec=_codec_name(s),
        sample_rate=int(cc.sample_rate or 0),
        channels=int(cc.channels or 0),
        channel_layout=layout if layout.isascii() else "",
        time_base=Fraction(s.time_base) if s.time_base else Fraction(1, int(cc.sample_rate or 1)),
        frame_size=max(0, min(int(cc.frame_size or 0), 0xFFFFFFFF)),
        bit_rate=max(0, min(int(cc.bit_rate or 0), 0xFFFFFFFF)),
        extradata=bytes(cc.extradata or b""),
    )


def _video_stream(
    container: av.container.InputContainer, fail: Callable[[str], InvrMediaError], audio: bool = False,
) -> tuple[av.video.stream.VideoStream, tuple[av.stream.Stream, AudioStreamInfo] | None, list[OtherStream]]:
    """The first video stream (not a cover picture), the audio stream kept (``audio``: the first one that can
    be stored) with its description, and the streams left behind, which are discarded."""
    videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not videos:
        kinds = sorted({s.type for s in container.streams})
        raise fail("no video stream (audio only)" if "audio" in kinds else "no video stream")
    vstream, others = videos[0], []
    kept: tuple[av.stream.Stream, AudioStreamInfo] | None = None
    for s in container.streams:
        if s is vstream:
            continue
        why = ""
        if audio and s.type == "audio" and kept is None:
            try:
                info = describe_audio(s)
                rules.check_audio_stream(info, "its parameters")
            except InvrError as exc:
                why = str(exc)
            else:
                kept = (s, info)
                continue
        others.append(OtherStream(s.index, s.type, _codec_name(s), why))
        s.discard = av.stream.Discard.all  # demux only the video (and the audio kept)
    vstream.thread_type = "AUTO"
    return vstream, kept, others


class _AudioTap:
    """The kept audio stream's packets, demuxed alongside the video: held with the source's timestamps until
    the first wanted frame's time is known, then handed out timed from it, cut to the encoded frames' time."""

    def __init__(self, stream: av.stream.Stream, info: AudioStreamInfo) -> None:
        self.stream = stream
        self.info = info
        self._raw: list[tuple[bytes, int | None, int | None, int, bool, bool]] = []
        self.shift: int | None = None  # source ticks of the first wanted frame's time
        self.lo: Fraction | None = None  # seconds from the first frame: packets ending by then are cut
        self.hi: Fraction | None = None  # packets starting then or later are cut
        self._last_dts: int | None = None
        self._end = 0  # where the previous packet ended (ticks), for a packet without timestamps
        self.counts = {"made_up": 0, "dts_raised": 0, "cut_before": 0, "cut_after": 0, "kept": 0, "bytes": 0}
        self.past_end = False  # a packet at or after hi was demuxed: the rest can be left unread

    def add(self, packet: av.Packet) -> None:
        if packet.size == 0:
            return  # the demuxer's end-of-stream marker
        duration = int(packet.duration or 0)
        self._raw.append((bytes(packet), packet.pts, packet.dts, max(0, min(duration, 0xFFFFFFFF)),
                          bool(packet.is_keyframe), bool(packet.is_discard)))
        if self.hi is not None and self.shift is not None and packet.pts is not None and \
                (packet.pts - self.shift) * self.info.time_base >= self.hi:
            self.past_end = True

    def take(self) -> list[AudioPacket]:
        """The packets demuxed so far, timed from the first frame, those outside [lo, hi) cut."""
        if self.shift is None:
            return []
        out = []
        tb = self.info.time_base
        for data, pts, dts, duration, key, discard in self._raw:
            if pts is None and dts is None:
                self.counts["made_up"] += 1
                pts = dts = self._end + self.shift
            pts = dts if pts is None else pts
            dts = pts if dts is None else dts
            pts, dts = pts - self.shift, dts - self.shift
            self._end = pts + duration
            if self.lo is not None and ((pts + duration) * tb <= self.lo if duration else pts * tb < self.lo):
                self.counts["cut_before"] += 1
                continue
            if self.hi is not None and pts * tb >= self.hi:
                self.counts["cut_after"] += 1
                continue
            if self._last_dts is not None and dts < self._last_dts:
                self.counts["dts_raised"] += 1
                dts = self._last_dts
            self._last_dts = dts
            self.counts["kept"] += 1
            self.counts["bytes"] += len(data)
            out.append(AudioPacket(0, pts, dts, duration, data, keyframe=key, discard=discard))
        self._raw.clear()
        return out


def _describe(
    vstream: av.video.stream.VideoStream, first: av.VideoFrame, seek: int, max_frames: int | None, name: str
) -> StreamInfo:
    """The source's stream facts, from its stream and its first wanted frame (which carries the colour)."""
    rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
    if not rate or rate <= 0:
        log.warning("%s: frame rate unknown; assuming 25 fps", name)
        rate = Fraction(25)
    rate = Fraction(rate).limit_denominator(1_000_000)
    total = int(vstream.frames or 0)
    count = 0
    if total > 0:
        count = max(0, total - seek)
        if max_frames is not None:
            count = min(count, max_frames)
    sar = vstream.sample_aspect_ratio or vstream.codec_context.sample_aspect_ratio
    sar = Fraction(sar) if sar and sar > 0 else Fraction(1)
    pix_fmt = vstream.codec_context.pix_fmt or first.format.name
    return StreamInfo(
        width=first.width,
        height=first.height,
        frame_count=count,
        frame_rate=rate,
        time_base=1 / rate,
        sample_aspect_ratio=sar,
        pix_fmt=pix_fmt,
        color_range=int(first.color_range),
        color_space=int(first.colorspace),
        color_primaries=int(first.color_primaries),
        color_trc=int(first.color_trc),
    )


def _conversion_notes(first: av.VideoFrame) -> list[str]:
    """What turning the source into 8-bit RGB loses, worth telling the user once."""
    fmt = first.format
    comps = fmt.components
    depth = max((c.bits for c in comps if not c.is_alpha), default=8)
    colour = [c for c in comps if not c.is_alpha]
    notes = []
    if any(c.is_alpha for c in comps):
        notes.append(f"source has an alpha channel ({fmt.name}); alpha dropped, INVR stores RGB")
    if len(colour) == 1 and not fmt.has_palette:
        notes.append(f"grayscale source ({fmt.name}); stored as RGB with R=G=B")
    if depth > 8:
        notes.append(f"{depth}-bit source ({fmt.name}); converted to 8-bit RGB")
    return notes


@dataclass(frozen=True)
class _Geometry:
    """``--crop-square`` and ``--scale``: a centre crop, then an area-filtered resize."""

    crop: tuple[int, int, int, int] | None = None  # x0, y0, width, height
    size: tuple[int, int] | None = None  # width, height after the crop, when it differs

    @staticmethod
    def plan(src: StreamInfo, crop_square: bool, scale: tuple[int, int] | None) -> tuple[_Geometry, StreamInfo]:
        """The geometry for a source and the stream the encoder then sees (display aspect ratio kept)."""
        w, h = src.width, src.height
        sar = src.sample_aspect_ratio
        crop = None
        if crop_square and w != h:
            side = min(w, h)
            crop = ((w - side) // 2, (h - side) // 2, side, side)
            w = h = side
        if scale is not None and scale != (w, h):
            nw, nh = scale
            # Keep the display aspect ratio, as FFmpeg's scale filter does.
            sar = (sar * Fraction(w * nh, h * nw)).limit_denominator(65535)
            w, h = nw, nh
        size = (w, h) if (w, h) != (src.width, src.height) else None
        return _Geometry(crop, size), replace(src, width=w, height=h, sample_aspect_ratio=sar)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        if self.crop is not None:
            x0, y0, cw, ch = self.crop
            rgb = rgb[y0 : y0 + ch, x0 : x0 + cw]
        if self.size is not None:
            tw, th = self.size
            scaled = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            rgb = scaled.reformat(width=tw, height=th, interpolation="AREA").to_ndarray(format="rgb24")
        return np.ascontiguousarray(rgb, dtype=np.uint8)


class VideoReader:
    """RGB frames from a video file or a pipe, one at a time.

    ``source`` is a path, ``"-"`` for standard input (Y4M, recognised by its ``YUV4MPEG2`` magic; other
    streamable formats are probed), or a readable binary file object. ``seek`` skips that many frames and
    ``frames`` caps how many are returned. ``crop_square`` centre-crops to a square and ``scale`` resizes
    with the area filter (libswscale), the INVR paper's 128x128 setting. ``audio`` keeps the first audio
    stream that can be stored (:attr:`audio`, :meth:`take_audio`); the others are listed in
    :attr:`other_streams`.

    Opening decodes the first frame, so :attr:`info` (the stream the encoder sees, after crop and scale)
    and :attr:`source_info` (the source as found) are exact before the first frame is asked for.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        seek: int = 0,
        frames: int | None = None,
        crop_square: bool = False,
        scale: tuple[int, int] | None = None,
        name: str | None = None,
        audio: bool = False,
    ) -> None:
        if seek < 0:
            raise ValueError("seek must be >= 0")
        if frames is not None and frames < 1:
            raise ValueError("frames must be >= 1")
        if name is None:
            if source == "-":
                name = "stdin"
            elif isinstance(source, (str, os.PathLike)):
                name = os.fspath(source)
            else:
                name = str(getattr(source, "name", "input"))
        self.name = name
        self.seek = seek
        self.max_frames = frames
        self.crop_square = crop_square
        self.scale = scale
        self.other_streams: list[OtherStream] = []
        self.want_audio = audio
        self.audio: AudioStreamInfo | None = None  # the audio stream kept (audio=True), as .invr declares it
        self.audio_source: OtherStream | None = None  # which stream of the source it is
        self._tap: _AudioTap | None = None
        self._packets: Iterator[av.Packet] = iter(())
        self.notes: list[str] = []  # conversions applied, worth telling the user once
        self.frames_read = 0
        self._container: av.container.InputContainer | None = None
        self._frames_iter: Iterator[av.VideoFrame] | None = None
        self._first: av.VideoFrame | None = None
        self._closed = False
        self._sniffed: _Sniffed | None = None
        self._decoded = 0
        try:
            self._open(source)
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------------------
    def _fail(self, what: str) -> InvrMediaError:
        return InvrMediaError(f"{self.name}: {what}")

    def _open(self, source: str | os.PathLike[str] | BinaryIO) -> None:
        self._sniffed = sniffed = _sniff(source, self._fail)
        try:
            self._container = av.open(sniffed.target, "r", format=sniffed.format, metadata_errors="ignore")
        except av.FFmpegError as exc:
            hint = ""
            if sniffed.y4m is not None and sniffed.y4m.frame_bytes is None:
                hint = f" (Y4M colour space C{sniffed.y4m.colour} is not one FFmpeg reads)"
            raise self._fail(f"cannot read as video: {_av_message(exc)}{hint}") from exc
        except OSError as exc:
            raise self._fail(_av_message(exc)) from exc
        self._stream, kept, self.other_streams = _video_stream(self._container, self._fail, self.want_audio)
        if kept is not None:
            self._tap = _AudioTap(kept[0], kept[1])
            self.audio = kept[1]
            self.audio_source = OtherStream(kept[0].index, "audio", kept[1].codec)
            self._packets = self._container.demux(self._stream, kept[0])
        else:
            self._packets = self._container.demux(self._stream)
        self._frames_iter = self._decode(self._stream)
        # Skip to the first wanted frame and keep it: it carries the colour facts.
        for skipped in range(self.seek + 1):
            frame = next(self._frames_iter, None)
            if frame is None:
                if skipped == 0:
                    cut = self._y4m_cut()
                    raise self._fail(f"no complete frame: {cut}" if cut else "no frames in the video stream")
                raise self._fail(f"--seek {self.seek} is past the last frame (the video has {skipped} frames)")
        self._first = frame
        self.source_info = _describe(self._stream, frame, self.seek, self.max_frames, self.name)
        if self._tap is not None:
            self._time_audio(frame)
        self.notes = _conversion_notes(frame)
        self._geometry, self.info = _Geometry.plan(self.source_info, self.crop_square, self.scale)

    def _y4m_cut(self) -> str | None:
        """For a Y4M source read to its end: the partial frame its last bytes were, if any."""
        sniffed = self._sniffed
        if sniffed is None or sniffed.y4m is None or sniffed.stream_size is None:
            return None
        try:
            return sniffed.y4m.describe_cut(sniffed.stream_size(), self._decoded)
        except OSError:
            return None

    def _time_audio(self, first: av.VideoFrame) -> None:
        """Time the audio from the first wanted frame, cut to the frames asked for (--seek, --frames)."""
        tap = self._tap
        assert tap is not None
        start = Fraction(0)  # a frame without a time: taken as the audio's time 0
        if first.pts is not None and first.time_base is not None:
            start = Fraction(first.pts) * Fraction(first.time_base)
        tap.shift = round(start / tap.info.time_base)
        tap.lo = Fraction(0) if self.seek else None
        if self.max_frames is not None:
            tap.hi = Fraction(self.max_frames) / self.source_info.frame_rate

    def take_audio(self, final: bool = False) -> list[AudioPacket]:
        """The kept audio stream's packets demuxed since the last call, timestamps counted from the first
        frame yielded (in :attr:`audio` 's time base), payloads as the source had them. With ``--seek`` the
        packets that end before the first frame are cut, with ``--frames`` those that start after the last
        frame's time. ``final``: after the last frame, read on to the audio's end (or that time) first."""
        tap = self._tap
        if tap is None:
            return []
        if final and not self._closed:
            try:
                for packet in self._packets:
                    if packet.stream_index == tap.stream.index:
                        tap.add(packet)
                        if tap.past_end:
                            break
            except (av.FFmpegError, OSError) as exc:  # what was read is kept; the frames are all encoded
                log.warning("%s: reading the audio after the last frame: %s", self.name, _av_message(exc))
        return tap.take()

    @property
    def audio_counts(self) -> dict[str, int]:
        """What became of the kept audio's packets so far: kept, bytes, cut_before, cut_after, made_up (no
        timestamps: placed after the packet before), dts_raised (a dts before the previous one's: raised)."""
        return dict(self._tap.counts) if self._tap is not None else {}

    def _decode(self, vstream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
        assert self._container is not None
        index = 0
        audio = self._tap.stream.index if self._tap is not None else -1
        try:
            for packet in self._packets:
                if packet.stream_index == audio:
                    assert self._tap is not None
                    self._tap.add(packet)
                    continue
                for frame in packet.decode():
                    index += 1
                    self._decoded = index
                    yield frame
        except av.FFmpegError as exc:
            raise self._fail(f"decoding frame {index}: {_av_message(exc)}") from exc
        except OSError as exc:
            raise self._fail(f"reading: {_av_message(exc)}") from exc

    # -- frames --------------------------------------------------------------------------------------
    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if frame.width != self.source_info.width or frame.height != self.source_info.height:
            raise self._fail(
                f"frame {self.seek + self.frames_read} is {frame.width}x{frame.height}, but the video started "
                f"at {self.source_info.width}x{self.source_info.height}; size changes are not supported"
            )
        return self._geometry.apply(frame.to_ndarray(format="rgb24"))

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self) -> Iterator[np.ndarray]:
        """Yield the wanted frames as ``uint8`` arrays of shape ``(H, W, 3)``, RGB."""
        if self._frames_iter is None or self._closed:
            return
        while self.max_frames is None or self.frames_read < self.max_frames:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                frame = next(self._frames_iter, None)
                if frame is None:
                    cut = self._y4m_cut()
                    if cut:
                        log.warning("%s: %s", self.name, cut)
                    break
            rgb = self._to_rgb(frame)
            self.frames_read += 1
            yield rgb

    @property
    def expected_frames(self) -> int:
        """Frames this reader will yield if known exactly, else an estimate from the duration, else 0."""
        if self.info.frame_count:
            return self.info.frame_count
        s = self._stream
        if s.duration and s.time_base:
            est = int(round(float(s.duration * s.time_base * self.source_info.frame_rate))) - self.seek
        elif self._container is not None and self._container.duration:
            est = int(round(self._container.duration / 1_000_000 * float(self.source_info.frame_rate))) - self.seek
        else:
            return 0
        if self.max_frames is not None:
            est = min(est, self.max_frames)
        return max(est, 0)

    def close(self) -> None:
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # closing a half-read pipe must not mask the real outcome
                pass
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(source: str | os.PathLike[str] | BinaryIO, **kwargs: object) -> VideoReader:
    """Open ``source`` for reading RGB frames; see :class:`VideoReader`."""
    return VideoReader(source, **kwargs)  # type: ignore[arg-type]


def _stdin_binary() -> BinaryIO:
    import sys

    return sys.stdin.buffer


# -- writing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFormat:
    """How a decoded video is written: FFmpeg muxer, codec, codec options."""

    format: str  # FFmpeg muxer name
    codec: str
    options: dict[str, str] = field(default_factory=dict)
    raw: bool = False  # rawvideo / y4m: no compression, any size and pixel format


_BY_EXTENSION: dict[str, str] = {
    ".y4m": "yuv4mpegpipe",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".nut": "nut",
    ".yuv": "rawvideo",
    ".rgb": "rawvideo",
    ".raw": "rawvideo",
}

_FORMATS: dict[str, OutputFormat] = {
    "yuv4mpegpipe": OutputFormat("yuv4mpegpipe", "wrapped_avframe", raw=True),
    "rawvideo": OutputFormat("rawvideo", "rawvideo", raw=True),
    "mp4": OutputFormat("mp4", "libx264", {"crf": "18", "preset": "medium"}),
    "mov": OutputFormat("mov", "libx264", {"crf": "18", "preset": "medium"}),
    "matroska": OutputFormat("matroska", "libx264", {"crf": "18", "preset": "medium"}),
    "webm": OutputFormat("webm", "libvpx-vp9", {"crf": "24", "b": "0", "row-mt": "1"}),
    "avi": OutputFormat("avi", "ffv1"),
    "nut": OutputFormat("nut", "ffv1"),
}

_FORMAT_ALIASES = {"y4m": "yuv4mpegpipe", "mkv": "matroska", "raw": "rawvideo"}


def choose_output_format(path: str | None, forced: str | None = None) -> OutputFormat:
    """The writer for ``path`` (its extension decides) or the ``-f`` name ``forced``; Y4M for a pipe."""
    if forced:
        name = _FORMAT_ALIASES.get(forced, forced)
        if name in _FORMATS:
            return _FORMATS[name]
        if name not in av.formats_available:
            raise InvrMediaError(f"unknown output format {forced!r}")
        return OutputFormat(name, "")  # the muxer's default video codec, found when opening
    if path is None or path == "-":
        return _FORMATS["yuv4mpegpipe"]
    ext = os.path.splitext(path)[1].lower()
    if ext in _BY_EXTENSION:
        return _FORMATS[_BY_EXTENSION[ext]]
    known = ", ".join(sorted(_BY_EXTENSION))
    raise InvrMediaError(
        f"{path}: cannot tell the output format from {ext or 'a name without extension'!r} "
        f"(known: {known}); add -f FORMAT"
    )


def _eight_bit(pix_fmt: str) -> str:
    """The 8-bit YUV layout closest to a source pixel format (what invr-dec writes by default)."""
    base = pix_fmt.replace("yuvj", "yuv")
    for layout in ("yuv420p", "yuv422p", "yuv444p"):
        if base.startswith(layout) or base.startswith(layout.replace("p", "ap")):
            return layout
    if base.startswith(("nv12", "nv21", "p010", "p016", "yuva420p")):
        return "yuv420p"
    if base.startswith(("gray", "ya", "monow", "monob")):
        return "yuv420p"
    return "yuv444p"


def default_pix_fmt(fmt: OutputFormat, info: StreamInfo, ext: str = "") -> str:
    """Pixel format used when ``--pix-fmt`` is not given."""
    if fmt.format == "rawvideo":
        return "yuv420p" if ext == ".yuv" else "rgb24"
    chosen = _eight_bit(info.pix_fmt or "yuv420p")
    if not fmt.raw and fmt.codec in ("libx264", "") and (info.width % 2 or info.height % 2):
        # libx264 needs even sizes for subsampled chroma; 4:4:4 keeps the exact size and stays playable.
        if chosen != "yuv444p":
            log.info("odd frame size %dx%d: writing %s as yuv444p", info.width, info.height, fmt.format)
        chosen = "yuv444p"
    return chosen


class _AudioCopy:
    """One audio stream muxed by stream copy: the packets go into the output as they are, only retimed from
    the output's first frame."""

    def __init__(self, stream: av.stream.Stream, info: AudioStreamInfo, offset: Fraction) -> None:
        self.stream = stream
        self.info = info
        self.shift = round(offset / info.time_base)

    def packets(self, p: AudioPacket) -> list[av.Packet]:
        out = av.Packet(p.data)
        out.pts, out.dts, out.duration = p.pts - self.shift, p.dts - self.shift, p.duration
        out.time_base = self.info.time_base
        out.is_keyframe = p.keyframe  # (PyAV cannot set the discard flag: such a packet goes out as it is)
        out.stream = self.stream
        return [out]

    def flush(self) -> list[av.Packet]:
        return []


class _AudioTranscode:
    """One audio stream decoded and encoded again with the output's usual audio codec (where the output does
    not take the source's codec by stream copy)."""

    def __init__(self, container: av.container.OutputContainer, info: AudioStreamInfo, offset: Fraction,
                 codec: str) -> None:
        self.info = info
        self.offset = offset
        self.decoder = av.CodecContext.create(info.codec, "r")
        self.decoder.sample_rate = info.sample_rate
        self.decoder.layout = _layout(info)
        if info.extradata:
            self.decoder.extradata = info.extradata
        rates = av.Codec(codec, "w").audio_rates
        rate = info.sample_rate
        if rates and rate not in rates:
            rate = min((r for r in rates if r >= rate), default=max(rates))
        self.stream = container.add_stream(codec, rate=rate)
        try:
            self.stream.layout = _layout(info)
        except (ValueError, av.FFmpegError):
            self.stream.layout = "stereo"
        self.stream.time_base = Fraction(1, rate)
        self.rate = rate
        self.resampler: av.AudioResampler | None = None
        self.next_pts: int | None = None

    def _encode(self, frames: list[av.AudioFrame]) -> list[av.Packet]:
        out: list[av.Packet] = []
        cc = self.stream.codec_context
        if self.resampler is None:
            self.resampler = av.AudioResampler(format=cc.format, layout=cc.layout, rate=self.rate,
                                               frame_size=cc.frame_size or None)
        for frame in frames:
            if self.next_pts is None and frame is not None and frame.pts is not None:
                self.next_pts = round((frame.pts * self.info.time_base - self.offset) * self.rate)
            for r in self.resampler.resample(frame):
                r.pts = self.next_pts or 0
                r.time_base = Fraction(1, self.rate)
                self.next_pts = r.pts + r.samples
                out += self.stream.encode(r)
        return out

    def packets(self, p: AudioPacket) -> list[av.Packet]:
        packet = av.Packet(p.data)
        packet.pts, packet.dts, packet.duration = p.pts, p.dts, p.duration
        packet.time_base = self.info.time_base
        return self._encode(list(self.decoder.decode(packet)))

    def flush(self) -> list[av.Packet]:
        frames = list(self.decoder.decode(None))
        out = self._encode(frames)
        if self.resampler is not None:
            out += self._encode([None])  # type: ignore[list-item]  # the resampler's last samples
        return out + list(self.stream.encode(None))


def _layout(info: AudioStreamInfo) -> av.AudioLayout:
    try:
        return av.AudioLayout(info.channel_layout) if info.channel_layout else av.AudioLayout(info.channels)
    except (ValueError, av.FFmpegError):
        return av.AudioLayout(info.channels)


def _copy_stream(container: av.container.OutputContainer, info: AudioStreamInfo) -> av.stream.Stream:
    """An output stream for ``info`` 's packets by stream copy. PyAV makes a stream's parameters only from a
    codec context, and a copied stream's from a template stream: the template is a stream of the codec in a
    scratch container that is never written, its parameters then set from ``info`` (ValueError or
    FFmpegError when the codec has no encoder here or the output does not take it)."""
    scratch = av.open(io.BytesIO(), "w", format=container.format.name)
    try:
        template = scratch.add_stream(info.codec, rate=info.sample_rate)
        stream = container.add_stream_from_template(template, opaque=True)
    finally:
        scratch.close()
    cc = stream.codec_context
    cc.sample_rate = info.sample_rate
    cc.layout = _layout(info)
    cc.extradata = info.extradata or None
    cc.bit_rate = info.bit_rate
    cc.time_base = info.time_base
    stream.time_base = info.time_base
    return stream


@dataclass(frozen=True)
class AudioRoute:
    """What :class:`VideoWriter` does with one audio stream: ``copy`` it, ``transcode`` it to ``codec``, or
    leave it out (``none``); ``says`` is the line that tells the user so."""

    kind: str  # "copy", "transcode", "none"
    says: str
    codec: str = ""


def audio_plan(fmt: OutputFormat, streams: tuple[AudioStreamInfo, ...]) -> list[AudioRoute]:
    """What :class:`VideoWriter` will do with each audio stream in an output of ``fmt``, found by setting the
    stream up in a scratch output of that format and writing its header: stream copy where that works, else
    the format's usual audio codec, else nothing (Y4M and raw video carry no audio)."""
    if fmt.raw or fmt.format in ("yuv4mpegpipe", "rawvideo"):
        what = "Y4M" if fmt.format == "yuv4mpegpipe" else "raw video"
        return [AudioRoute("none", f"left out ({what} carries no audio)") for _ in streams]
    return [_route(fmt, info) for info in streams]


def _route(fmt: OutputFormat, info: AudioStreamInfo) -> AudioRoute:
    try:
        return _find_route(fmt, info)
    except (ValueError, TypeError, RuntimeError, OSError, av.FFmpegError) as exc:  # no scratch output of it
        return AudioRoute("none", f"left out ({fmt.format}: {_av_message(exc)})")


def _find_route(fmt: OutputFormat, info: AudioStreamInfo) -> AudioRoute:
    def header_fails(make: Callable[[av.container.OutputContainer], object]) -> str | None:
        try:
            with av.open(io.BytesIO(), "w", format=fmt.format) as out:
                make(out)
                out.start_encoding()
        except (ValueError, TypeError, RuntimeError, av.FFmpegError, InvrError) as exc:
            return _av_message(exc)
        return None

    try:
        av.Codec(info.codec, "w")
    except (ValueError, av.FFmpegError):
        why = (f"PyAV can set up a copied stream only of a codec it can encode, and has no {info.codec} "
               "encoder")
    else:
        failed = header_fails(lambda out: _copy_stream(out, info))
        if failed is None:
            return AudioRoute("copy", "stream copy")
        why = f"{fmt.format} does not take {info.codec}"
        if "does not support" not in failed:
            why += f": {failed}"
    with av.open(io.BytesIO(), "w", format=fmt.format) as probe:
        target = probe.default_audio_codec
    if not target or target == "none":
        return AudioRoute("none", f"left out ({why}, and {fmt.format} has no audio codec of its own)")
    failed = header_fails(lambda out: _AudioTranscode(out, info, Fraction(0), target))
    if failed is not None:
        return AudioRoute("none", f"left out ({why}, and re-encoding it to {target} failed: {failed})")
    return AudioRoute("transcode", f"re-encoded to {target} ({why})", target)


class VideoWriter:
    """Write RGB frames to a file path or a binary file object (a pipe, stdout).

    ``fmt`` comes from :func:`choose_output_format`. Frames are converted to ``pix_fmt`` with the matrix
    and range tagged in ``info`` (BT.601 limited range when untagged) and the colour tags are passed on.
    ``audio`` streams are muxed beside the video (:meth:`write_audio`) as :func:`audio_plan` says
    (:attr:`audio_plan`, an :class:`AudioRoute` per stream), each packet placed ``audio_offset`` seconds
    earlier: the time of the first frame written, on the clock of the packets' timestamps.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        info: StreamInfo,
        fmt: OutputFormat,
        *,
        pix_fmt: str | None = None,
        name: str | None = None,
        ext: str = "",
        audio: tuple[AudioStreamInfo, ...] = (),
        audio_offset: Fraction = Fraction(0),
    ) -> None:
        self.name = name or (str(target) if isinstance(target, (str, os.PathLike)) else "stdout")
        self.audio_plan = audio_plan(fmt, audio)
        self._audio: list[_AudioCopy | _AudioTranscode | None] = []
        self.audio_packets = 0
        self.info = info
        self.fmt = fmt
        self.pix_fmt = pix_fmt or default_pix_fmt(fmt, info, ext)
        self.frames_written = 0
        self._closed = False
        try:
            av.VideoFormat(self.pix_fmt)
        except (ValueError, av.FFmpegError) as exc:
            raise InvrMediaError(f"unknown pixel format {self.pix_fmt!r}") from exc
        seekable = isinstance(target, (str, os.PathLike)) or is_seekable(target)
        options: dict[str, str] = {}
        if fmt.format in ("mp4", "mov") and not seekable:
            options["movflags"] = "frag_keyframe+empty_moov"
        try:
            self._container = av.open(target, "w", format=fmt.format, options=options)
        except av.FFmpegError as exc:
            raise InvrMediaError(f"{self.name}: cannot open for writing: {_av_message(exc)}") from exc
        try:
            codec = fmt.codec or self._container.default_video_codec
            if not codec or codec == "none":
                raise InvrMediaError(f"{self.name}: format {fmt.format!r} has no video codec")
            rate = info.frame_rate if info.frame_rate and info.frame_rate > 0 else Fraction(25)
            rate = _av_rational(rate, "frame rate", self.name)
            self._stream = self._container.add_stream(codec, rate=rate, options=dict(fmt.options))
            cc = self._stream.codec_context
            self._stream.width = info.width
            self._stream.height = info.height
            self._stream.pix_fmt = self.pix_fmt
            self._stream.time_base = 1 / rate
            cc.time_base = 1 / rate
            self._frame_time_base = Fraction(1) / rate
            if info.sample_aspect_ratio and info.sample_aspect_ratio != 1:
                cc.sample_aspect_ratio = _av_rational(info.sample_aspect_ratio, "aspect ratio", self.name)
            # Y4M and raw frames carry no matrix tag, so readers assume BT.601: write what they will assume.
            self._matrix = None if fmt.raw else _SWS_MATRIX.get(info.color_space)
            self._range = info.color_range if info.color_range in (1, 2) else 1
            if not av.VideoFormat(self.pix_fmt).is_rgb:
                cc.color_range = self._range
                if self._matrix is not None:
                    cc.colorspace = info.color_space
            if info.color_primaries not in (0, 2):
                cc.color_primaries = info.color_primaries
            if info.color_trc not in (0, 2):
                cc.color_trc = info.color_trc
            self._stream.thread_type = "AUTO"
            for stream, route in zip(audio, self.audio_plan):
                if route.kind == "copy":
                    copied = _copy_stream(self._container, stream)
                    self._audio.append(_AudioCopy(copied, stream, audio_offset))
                elif route.kind == "transcode":
                    self._audio.append(_AudioTranscode(self._container, stream, audio_offset, route.codec))
                else:
                    self._audio.append(None)
        except av.FFmpegError as exc:
            self._abort()
            raise InvrMediaError(
                f"{self.name}: cannot write {fmt.format} with {fmt.codec or 'its codec'} as {self.pix_fmt}: "
                f"{_av_message(exc)}"
            ) from exc
        except BaseException:
            self._abort()
            raise

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame, ``uint8`` ``(H, W, 3)`` RGB."""
        if rgb.shape != (self.info.height, self.info.width, 3) or rgb.dtype != np.uint8:
            raise InvrMediaError(
                f"{self.name}: frame {self.frames_written} has shape {rgb.shape} {rgb.dtype}, "
                f"expected ({self.info.height}, {self.info.width}, 3) uint8"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self.pix_fmt != "rgb24":
            is_rgb = av.VideoFormat(self.pix_fmt).is_rgb
            frame = frame.reformat(
                format=self.pix_fmt,
                dst_colorspace=None if is_rgb else self._matrix,
                dst_color_range=None if is_rgb else self._range,
            )
        frame.pts = self.frames_written
        # The encoder's time base, fixed here: the stream's becomes the muxer's once the header is written
        # (mkv: 1/1000), and frame numbers read in it would all round to the first frames' time.
        frame.time_base = self._frame_time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.FFmpegError as exc:
            raise InvrMediaError(f"{self.name}: writing frame {self.frames_written}: {_av_message(exc)}") from exc
        self.frames_written += 1

    @property
    def takes_audio(self) -> bool:
        """Whether any audio stream goes into the output (copied or re-encoded)."""
        return any(out is not None for out in self._audio)

    def write_audio(self, packet: AudioPacket) -> None:
        """Mux one audio packet of stream ``packet.stream`` (as :attr:`audio_plan` says: copied, re-encoded,
        or dropped when the output carries no audio)."""
        out = self._audio[packet.stream] if 0 <= packet.stream < len(self._audio) else None
        if out is None:
            return
        try:
            self._container.mux(out.packets(packet))
        except av.FFmpegError as exc:
            message = f"{self.name}: writing audio packet at pts {packet.pts}: {_av_message(exc)}"
            raise InvrMediaError(message) from exc
        self.audio_packets += 1

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            for out in self._audio:
                if out is not None:
                    self._container.mux(out.flush())
            self._container.close()
        except av.FFmpegError as exc:
            self._abort()
            raise InvrMediaError(f"{self.name}: finishing: {_av_message(exc)}") from exc
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        self._closed = True
        try:
            self._container.close()
        except BaseException:  # the output is being abandoned; the first error is the one to report
            pass

    def abort(self) -> None:
        """Give up on the output without flushing (after an error or a closed pipe)."""
        self._abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()
