"""Writing .invr bytes (spec/invr-format.md, "Writing").

The muxer writes strictly forwards, so a pipe is a valid output: header, one CHNK record per packet as it
arrives, then on close the INDX record and the TAIL record. When the output is seekable and the header's
frame count was unknown (0) or wrong, close() rewrites the header in place with the true count; the header's
length never changes, so nothing else moves.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from invrcodec.format import structs as fmt
from invrcodec.errors import InvrError, MalformedError
from invrcodec.fileio import is_seekable
from invrcodec.types import Header, IndexEntry, Packet

__all__ = ["Muxer"]

log = logging.getLogger(__name__)


class Muxer:
    """Writes one .invr stream to a binary file object (seekable or not); see :func:`invrcodec.open`.

    ``minor`` and ``extensions`` exist for tests of forward compatibility; encoders leave them alone.
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        header: Header,
        *,
        minor: int = fmt.MINOR,
        extensions: tuple[fmt.Extension, ...] = (),
    ) -> None:
        self._f = fileobj
        self._header = header
        self._header_bytes = fmt.build_header(header, minor=minor, extensions=extensions)
        self._seekable = is_seekable(fileobj)
        self._base = fileobj.tell() if self._seekable else 0
        self._pos = 0
        self._entries: list[IndexEntry] = []
        self._frames = 0
        self._closed = False
        self._write(self._header_bytes)

    @property
    def header(self) -> Header:
        return self._header

    @property
    def index(self) -> list[IndexEntry]:
        """Entries of the chunks written so far."""
        return list(self._entries)

    @property
    def frame_count(self) -> int:
        return self._frames

    @property
    def bytes_written(self) -> int:
        return self._pos

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._f.write(view)
            if n is None:  # a non-blocking raw stream that took nothing; BinaryIO promises blocking
                raise InvrError("output refused the write (non-blocking stream?)")
            view = view[n:]
        self._pos += len(data)

    def mux(self, packet: Packet) -> None:
        """Append one chunk; packets come in order, each starting where the previous one ended."""
        if self._closed:
            raise InvrError("mux() on a closed muxer")
        i = len(self._entries)
        what = f"packet {i}"
        if packet.index != i:
            raise MalformedError(f"{what}: numbered {packet.index}, expected {i}")
        if packet.first_frame != self._frames:
            raise MalformedError(f"{what}: first_frame {packet.first_frame}, expected {self._frames}")
        if self._frames + packet.frame_count > 0xFFFFFFFF:
            raise MalformedError(f"{what}: more than 2^32 - 1 frames in the stream")
        fmt.check_packet(packet, self._header, what)
        record = fmt.build_record(fmt.TAG_CHUNK, fmt.build_chunk_body(packet))
        entry = IndexEntry(
            first_frame=packet.first_frame,
            frame_count=packet.frame_count,
            offset=self._pos,
            size=len(record),
            crc32=int.from_bytes(record[-4:], "little"),
            train_psnr=float(packet.train_psnr),
            prediction=packet.prediction,
        )
        self._write(record)
        self._entries.append(entry)
        self._frames += packet.frame_count

    def close(self) -> None:
        """Write the index and the trailer, patch the frame count if the output is seekable, and flush.

        The file object itself is left open (its owner closes it).
        """
        if self._closed:
            return
        self._closed = True
        index_offset = self._pos
        self._write(fmt.build_record(fmt.TAG_INDEX, fmt.build_index_body(self._entries)))
        self._write(fmt.build_record(fmt.TAG_TRAILER, fmt.build_trailer_body(index_offset)))
        if self._frames != self._header.stream.frame_count:
            if self._seekable:
                patched = fmt.patch_frame_count(self._header_bytes, self._header, self._frames)
                self._f.seek(self._base)
                self._write_at_start(patched)
                self._f.seek(self._base + self._pos)
                log.debug(
                    "header frame_count patched from %d to %d", self._header.stream.frame_count, self._frames
                )
            else:
                log.debug(
                    "output not seekable: header keeps frame_count %d, the index says %d",
                    self._header.stream.frame_count,
                    self._frames,
                )
        self._f.flush()

    def _write_at_start(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._f.write(view)
            if n is None:
                raise InvrError("output refused the write (non-blocking stream?)")
            view = view[n:]

    def abort(self) -> None:
        """Stop without index or trailer, so the output is recognisably unfinished."""
        if not self._closed:
            self._closed = True
            try:
                self._f.flush()
            except (OSError, ValueError):
                pass
