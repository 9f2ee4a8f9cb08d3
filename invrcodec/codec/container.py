"""``invrcodec.open``: .invr files in PyAV's style (spec/invr-format.md, "Reading" and "Writing").

::

    with invrcodec.open("a.invr", "w", header=hdr) as out:
        out.mux(packet)
    with invrcodec.open("a.invr") as f:
        for frame in f.decode():
            ...

A file may be a path or a binary file object; a non-seekable one (a pipe) is written and read sequentially.

A source's audio travels as its compressed packets (spec "Audio"): declared with ``audio=`` when writing and
given to :meth:`OutputContainer.mux_audio`; when reading, :attr:`InputContainer.audio_streams` describes the
streams and ``demux(audio=True)``, ``decode(audio=True)`` or :meth:`InputContainer.demux_audio` hand out the
packets of a frame range, as PyAV's ``container.decode(video=0, audio=0)`` hands out frames of both.
"""

from __future__ import annotations

import builtins
import os
from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeVar, Union, overload

from invrcodec.format.demuxer import Demuxer
from invrcodec.errors import InvrError
from invrcodec.format.muxer import Muxer
from invrcodec.types import AudioIndexEntry, AudioPacket, AudioStreamInfo, Header, IndexEntry, Packet

if TYPE_CHECKING:
    import numpy as np

__all__ = ["InputContainer", "OutputContainer", "open"]

FileLike = Union[str, "os.PathLike[str]", BinaryIO]


def _name_of(file: FileLike) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    return str(getattr(file, "name", "<stream>"))


_C = TypeVar("_C", bound="_Container")


class _Container:
    """What both containers share: a path is opened here and closed with the container; a file object is the
    caller's and stays open."""

    def __init__(self, file: FileLike, mode: Literal["rb", "wb"]) -> None:
        self.name = _name_of(file)
        self._owned: BinaryIO | None = None
        if isinstance(file, (str, os.PathLike)):
            self._owned = builtins.open(file, mode)  # noqa: SIM115 - closed by _close_file()
            self._file: BinaryIO = self._owned
        else:
            self._file = file

    def close(self) -> None:
        self._close_file()

    def _close_file(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def _leave(self, ok: bool) -> None:
        """End of the ``with`` block; ``ok`` is false when it was left by an exception."""
        self.close()

    def __enter__(self: _C) -> _C:  # Python 3.10 has no typing.Self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave(exc_type is None)


class InputContainer(_Container):
    """An .invr stream opened for reading. Use as a context manager, or call :meth:`close`."""

    def __init__(self, file: FileLike) -> None:
        super().__init__(file, "rb")
        try:
            self._demuxer = Demuxer(self._file)
        except BaseException:
            self.close()
            raise

    @property
    def header(self) -> Header:
        """The header; ``stream.frame_count`` is the true count once the index is known."""
        return self._demuxer.header

    @property
    def index(self) -> list[IndexEntry]:
        """The chunk index (for a pipe: once :meth:`demux` has read the stream to its end)."""
        index = self._demuxer.index
        if index is None:
            raise InvrError("the index of a pipe is known only after demux() has read it to the end")
        return index

    @property
    def version(self) -> tuple[int, int]:
        """Format version (major, minor) of the file."""
        return self._demuxer.version

    @property
    def size(self) -> int | None:
        """Size in bytes, if known (always for a seekable input; for a pipe once read to the end)."""
        return self._demuxer.size

    @property
    def seekable(self) -> bool:
        return self._demuxer.seekable

    @property
    def frame_count(self) -> int:
        return self.header.stream.frame_count

    @property
    def duration(self) -> Fraction:
        """Duration in seconds."""
        return self.header.stream.duration

    @property
    def audio_streams(self) -> tuple[AudioStreamInfo, ...]:
        """The audio streams the file carries (stream copies of a source's), in their order; () when none."""
        return self._demuxer.audio_streams

    @property
    def audio(self) -> AudioStreamInfo | None:
        """The first audio stream, or None."""
        return self.audio_streams[0] if self.audio_streams else None

    @property
    def audio_index(self) -> list[AudioIndexEntry]:
        """Where the audio records are (for a pipe: once :meth:`demux` has read it to the end)."""
        index = self._demuxer.audio_index
        if index is None:
            raise InvrError("the audio index of a pipe is known only after demux() has read it to the end")
        return index

    def audio_span(self, first_frame: int = 0, frame_count: int | None = None,
                   rate: Fraction | float | None = None) -> tuple[Fraction | None, Fraction | None]:
        """Seconds [lo, hi) of the audio that goes with frames [first_frame, first_frame + frame_count) (with
        ``rate``: that many frames at that rate from ``first_frame``; spec "Audio"). None is unbounded: from
        frame 0 the span includes what starts before it, and without a frame count it runs to the end of the
        audio, past the last frame."""
        stream_rate = self.header.stream.frame_rate
        lo = Fraction(first_frame) / stream_rate if first_frame else None
        if frame_count is None:
            return lo, None
        return lo, Fraction(first_frame) / stream_rate + Fraction(frame_count) / Fraction(rate or stream_rate)

    def demux(self, first_frame: int = 0, frame_count: int | None = None, *,
              audio: bool = False) -> Iterator[Packet | AudioPacket]:
        """Packets of the chunks covering frames [first_frame, first_frame + frame_count), CRC-checked,
        from the key chunk at or before the first of them (a P-chunk is decoded from the chunks before it).
        ``audio=True`` adds the :class:`~invrcodec.types.AudioPacket` s of those frames' time, in file
        order."""
        span = self.audio_span(first_frame, frame_count) if audio else None
        return self._demuxer.demux(first_frame, frame_count, audio=span)

    def demux_audio(self, first_frame: int = 0, frame_count: int | None = None,
                    rate: Fraction | float | None = None) -> Iterator[AudioPacket]:
        """The audio packets that go with frames [first_frame, first_frame + frame_count) (``rate``: see
        :meth:`audio_span`), in file order, their payloads as the source had them and their timestamps counted
        from frame 0. A seekable file reads only the audio records that hold them."""
        return self._demuxer.demux_audio(*self.audio_span(first_frame, frame_count, rate))

    def decode(
        self, first_frame: int = 0, frame_count: int | None = None, device: str = "cpu", *,
        size: tuple[int, int] | None = None, scale: Fraction | float | None = None,
        region: tuple[int, int, int, int] | None = None, rate: Fraction | float | None = None,
        boundary: str = "crossfade", audio: bool = False,
    ) -> Iterator[np.ndarray | AudioPacket]:
        """Frames [first_frame, first_frame + frame_count) as uint8 HxWx3 RGB arrays.

        ``size=(W, H)`` or ``scale``, ``region=(w, h, x, y)`` and ``rate`` (then ``frame_count`` counts
        output frames) sample the networks at another size, region or frame rate, and ``boundary`` says
        what lies between two chunks (:mod:`invrcodec.codec.sampling`; spec: "Sampling at another size, ...").
        ``audio=True`` also yields the :class:`~invrcodec.types.AudioPacket` s of the frames' time (untouched:
        another rate renders other instants, the sound keeps its own), each before the frames of the chunk it
        was stored with.
        """
        from invrcodec.codec.decoder import Decoder  # lazily: import invrcodec (invr-probe) never imports torch

        span = self.audio_span(first_frame, frame_count, rate) if audio else None
        if size is not None or scale is not None or region is not None or rate is not None:
            from invrcodec.codec.decoder import decode_resampled
            from invrcodec.codec.sampling import Timeline, plan_geometry

            s = self.header.stream
            geometry = plan_geometry(s.width, s.height, size=size, scale=scale, region=region)
            timeline = Timeline(s.frame_rate, first_frame, frame_count, rate, boundary)  # type: ignore[arg-type]
            side: deque[AudioPacket] = deque()

            def chunks() -> Iterator[Packet]:
                for item in self._demuxer.demux(*timeline.source_span(), audio=span):
                    if isinstance(item, AudioPacket):
                        side.append(item)
                    else:
                        yield item

            for frame in decode_resampled(Decoder(self.header, device=device), chunks(), geometry, timeline):
                while side:
                    yield side.popleft()
                yield frame
            yield from side
            return
        stop = None if frame_count is None else first_frame + frame_count
        decoder = Decoder(self.header, device=device)
        for packet in self._demuxer.demux(first_frame, frame_count, audio=span):
            if isinstance(packet, AudioPacket):
                yield packet
                continue
            if packet.first_frame + packet.frame_count <= first_frame:
                decoder.weights(packet)  # before the range: only the reference of the chunks after it
                continue
            start = max(first_frame - packet.first_frame, 0)
            end = packet.frame_count if stop is None else min(stop - packet.first_frame, packet.frame_count)
            yield from decoder.frames(packet, start, end)


class OutputContainer(_Container):
    """An .invr stream opened for writing. Closing it (or leaving its ``with`` block) writes the index.

    Leaving the ``with`` block by an exception writes no index, so the file is recognisably unfinished.
    """

    def __init__(self, file: FileLike, header: Header, audio: tuple[AudioStreamInfo, ...] = ()) -> None:
        super().__init__(file, "wb")
        try:
            self._muxer = Muxer(self._file, header, audio=tuple(audio))
        except BaseException:
            self._close_file()
            raise

    @property
    def header(self) -> Header:
        return self._muxer.header

    @property
    def index(self) -> list[IndexEntry]:
        """Entries of the chunks written so far."""
        return self._muxer.index

    @property
    def frame_count(self) -> int:
        return self._muxer.frame_count

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._muxer.bytes_written

    @property
    def audio_streams(self) -> tuple[AudioStreamInfo, ...]:
        return self._muxer.audio_streams

    @property
    def audio_bytes(self) -> int:
        """Bytes the audio takes in the file so far (stream declarations, packet records, audio index)."""
        return self._muxer.audio_bytes

    def mux_audio(self, packet: AudioPacket | Iterable[AudioPacket]) -> None:
        """Queue audio packets (each stream's in dts order); each is written before the chunk whose time it
        starts in, once that chunk is muxed, or on close."""
        for p in [packet] if isinstance(packet, AudioPacket) else packet:
            self._muxer.mux_audio(p)

    def mux(self, packet: Packet | Iterable[Packet]) -> None:
        """Write one packet, or each of a list of packets (what ``Encoder.encode`` returns), in order."""
        if isinstance(packet, Packet):
            self._muxer.mux(packet)
        else:
            for p in packet:
                self._muxer.mux(p)

    def close(self) -> None:
        """Write index and trailer (and the true frame count, if seekable); close a file opened by path."""
        try:
            self._muxer.close()
        finally:
            self._close_file()

    def abort(self) -> None:
        """Stop without writing the index."""
        try:
            self._muxer.abort()
        finally:
            self._close_file()

    def _leave(self, ok: bool) -> None:
        if ok:
            self.close()
        else:
            self.abort()


@overload
def open(file: FileLike, mode: Literal["r"] = "r", header: None = None) -> InputContainer: ...


@overload
def open(file: FileLike, mode: Literal["w"], header: Header,
         audio: tuple[AudioStreamInfo, ...] = ()) -> OutputContainer: ...


def open(file: FileLike, mode: str = "r", header: Header | None = None,
         audio: tuple[AudioStreamInfo, ...] = ()) -> InputContainer | OutputContainer:
    """Open an .invr file (a path or a binary file object) for reading (``"r"``) or writing (``"w"``).

    Writing needs the stream's ``header``, and ``audio`` declares the audio streams whose packets
    :meth:`OutputContainer.mux_audio` takes; reading refuses both. Malformed input raises
    :class:`invrcodec.errors.InvrFormatError` (from here or from ``demux``).
    """
    if mode == "r":
        if header is not None or audio:
            raise ValueError("header= and audio= are for mode 'w'")
        return InputContainer(file)
    if mode == "w":
        if header is None:
            raise ValueError("mode 'w' needs header=")
        return OutputContainer(file, header, tuple(audio))
    raise ValueError(f"mode must be 'r' or 'w', not {mode!r}")
