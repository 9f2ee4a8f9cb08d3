"""``invrcodec.open``: .invr files in PyAV's style (spec/invr-format.md, "Reading" and "Writing").

::

    with invrcodec.open("a.invr", "w", header=hdr) as out:
        out.mux(packet)
    with invrcodec.open("a.invr") as f:
        for frame in f.decode():
            ...

A file may be a path or a binary file object; a non-seekable one (a pipe) is written and read sequentially.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeVar, Union, overload

from invrcodec.format.demuxer import Demuxer
from invrcodec.errors import InvrError
from invrcodec.format.muxer import Muxer
from invrcodec.types import Header, IndexEntry, Packet

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

    def demux(self, first_frame: int = 0, frame_count: int | None = None) -> Iterator[Packet]:
        """Packets of the chunks covering frames [first_frame, first_frame + frame_count), CRC-checked,
        from the key chunk at or before the first of them (a P-chunk is decoded from the chunks before it)."""
        return self._demuxer.demux(first_frame, frame_count)

    def decode(
        self, first_frame: int = 0, frame_count: int | None = None, device: str = "cpu", *,
        size: tuple[int, int] | None = None, scale: Fraction | float | None = None,
        region: tuple[int, int, int, int] | None = None, rate: Fraction | float | None = None,
        boundary: str = "crossfade",
    ) -> Iterator[np.ndarray]:
        """Frames [first_frame, first_frame + frame_count) as uint8 HxWx3 RGB arrays.

        ``size=(W, H)`` or ``scale``, ``region=(w, h, x, y)`` and ``rate`` (then ``frame_count`` counts
        output frames) sample the networks at another size, region or frame rate, and ``boundary`` says
        what lies between two chunks (:mod:`invrcodec.codec.sampling`; spec: "Sampling at another size, ...").
        """
        from invrcodec.codec.decoder import Decoder  # lazily: import invrcodec (invr-probe) never imports torch

        if size is not None or scale is not None or region is not None or rate is not None:
            from invrcodec.codec.decoder import decode_resampled
            from invrcodec.codec.sampling import Timeline, plan_geometry

            s = self.header.stream
            geometry = plan_geometry(s.width, s.height, size=size, scale=scale, region=region)
            timeline = Timeline(s.frame_rate, first_frame, frame_count, rate, boundary)  # type: ignore[arg-type]
            packets = self.demux(*timeline.source_span())
            yield from decode_resampled(Decoder(self.header, device=device), packets, geometry, timeline)
            return
        stop = None if frame_count is None else first_frame + frame_count
        decoder = Decoder(self.header, device=device)
        for packet in self.demux(first_frame, frame_count):
            if packet.first_frame + packet.frame_count <= first_frame:
                decoder.weights(packet)  # before the range: only the reference of the chunks after it
                continue
            start = max(first_frame - packet.first_frame, 0)
            end = packet.frame_count if stop is None else min(stop - packet.first_frame, packet.frame_count)
            yield from decoder.decode(packet, start, end)


class OutputContainer(_Container):
    """An .invr stream opened for writing. Closing it (or leaving its ``with`` block) writes the index.

    Leaving the ``with`` block by an exception writes no index, so the file is recognisably unfinished.
    """

    def __init__(self, file: FileLike, header: Header) -> None:
        super().__init__(file, "wb")
        try:
            self._muxer = Muxer(self._file, header)
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
def open(file: FileLike, mode: Literal["w"], header: Header) -> OutputContainer: ...


def open(file: FileLike, mode: str = "r", header: Header | None = None) -> InputContainer | OutputContainer:
    """Open an .invr file (a path or a binary file object) for reading (``"r"``) or writing (``"w"``).

    Writing needs the stream's ``header``; reading refuses one. Malformed input raises
    :class:`invrcodec.errors.InvrFormatError` (from here or from ``demux``).
    """
    if mode == "r":
        if header is not None:
            raise ValueError("header= is for mode 'w'")
        return InputContainer(file)
    if mode == "w":
        if header is None:
            raise ValueError("mode 'w' needs header=")
        return OutputContainer(file, header)
    raise ValueError(f"mode must be 'r' or 'w', not {mode!r}")
