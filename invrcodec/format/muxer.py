"""Writing .invr bytes (spec/invr-format.md, "Writing").

The muxer writes strictly forwards, so a pipe is a valid output: header, one CHNK record per packet as it
arrives, then on close the INDX record and the TAIL record. When the output is seekable and the header's
frame count was unknown (0) or wrong, close() rewrites the header in place with the true count; the header's
length never changes, so nothing else moves.

Audio (2.1): the streams are declared in the header (AUDS extensions) and the packets given to
:meth:`Muxer.mux_audio` wait in a queue; each is written, in AUDP records, before the CHNK record of the chunk
whose time it starts in, so that a reader of a pipe meets the sound with the picture it belongs to. Close
writes the AIDX record right after the last chunk, then the audio that starts after the last frame.
"""

from __future__ import annotations

import logging
from collections import deque
from fractions import Fraction
from typing import BinaryIO

from invrcodec.format import rules
from invrcodec.format import structs as fmt
from invrcodec.errors import InvrError, MalformedError
from invrcodec.fileio import is_seekable
from invrcodec.types import AudioIndexEntry, AudioPacket, AudioStreamInfo, Header, IndexEntry, Packet

__all__ = ["Muxer"]

log = logging.getLogger(__name__)

# How a writer cuts a stream's audio into records (not normative): a record holds at most this many packets or
# bytes, so a reader of a pipe holds little and a seek reads little beyond what it needs.
AUDIO_RECORD_PACKETS = 1024
AUDIO_RECORD_BYTES = 1 << 20


class Muxer:
    """Writes one .invr stream to a binary file object (seekable or not); see :func:`invrcodec.open`.

    ``audio`` declares the audio streams whose packets :meth:`mux_audio` takes; the file is then a 2.1 file,
    else a 2.0 one, and either way a 3.0 file when ``header`` has a tile grid, a 4.0 one when its tiles
    overlap (spec "Version rules"; each packet then holds every tile's tensors,
    :func:`invrcodec.format.structs.tile_tensors`). ``minor`` and ``extensions`` exist for tests of forward
    compatibility; encoders leave them alone.
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        header: Header,
        *,
        minor: int | None = None,
        extensions: tuple[fmt.Extension, ...] = (),
        audio: tuple[AudioStreamInfo, ...] = (),
    ) -> None:
        self._f = fileobj
        self._header = header
        rules.check_tiles(header)
        self._audio = tuple(audio)
        if len(self._audio) > 255:
            raise MalformedError(f"{len(self._audio)} audio streams (at most 255)")
        for i, a in enumerate(self._audio):
            rules.check_audio_stream(a, f"audio stream {i}")
        declared = tuple(fmt.Extension(fmt.EXT_AUDIO_STREAM, fmt.build_audio_stream(a)) for a in self._audio)
        if minor is None:
            minor = fmt.file_version(header, bool(self._audio))[1]
        self._queue: list[deque[AudioPacket]] = [deque() for _ in self._audio]
        self._last_dts: list[int | None] = [None for _ in self._audio]
        self._audio_entries: list[AudioIndexEntry] = []
        self._header_bytes = fmt.build_header(header, minor=minor, extensions=declared + extensions)
        self._audio_bytes = sum(8 + len(e.value) for e in declared)  # an extension's tag, length, value
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
    def audio_streams(self) -> tuple[AudioStreamInfo, ...]:
        return self._audio

    @property
    def audio_bytes(self) -> int:
        """Bytes the audio takes in the file so far: its AUDS extensions, AUDP records and AIDX record."""
        return self._audio_bytes

    @property
    def audio_index(self) -> list[AudioIndexEntry]:
        """Entries of the audio records written so far."""
        return list(self._audio_entries)

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
        self._write_audio(Fraction(packet.first_frame + packet.frame_count) / self._header.stream.frame_rate)
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

    def mux_audio(self, packet: AudioPacket) -> None:
        """Queue one audio packet; a stream's packets come in dts order. It is written before the first chunk
        that ends after it starts (or on close)."""
        if self._closed:
            raise InvrError("mux_audio() on a closed muxer")
        n = len(self._audio)
        what = f"audio packet of stream {packet.stream}"
        if not 0 <= packet.stream < n:
            raise MalformedError(f"{what}: the file declares {n} audio streams")
        last = self._last_dts[packet.stream]
        self._last_dts[packet.stream] = rules.check_audio_packets((packet,), n, last, what)
        self._queue[packet.stream].append(packet)

    def _records(self, until: Fraction | None) -> list[tuple[bytes, int, list[AudioPacket]]]:
        """The queued packets that start before ``until`` seconds (all when None) as AUDP records, each with
        its stream and packets, cut as AUDIO_RECORD_PACKETS and AUDIO_RECORD_BYTES say."""
        out: list[tuple[bytes, int, list[AudioPacket]]] = []
        for stream, q in enumerate(self._queue):
            tb = self._audio[stream].time_base
            groups: list[list[AudioPacket]] = [[]]
            size = 0
            while q and (until is None or q[0].pts * tb < until):
                p = q.popleft()
                full = len(groups[-1]) >= AUDIO_RECORD_PACKETS or size + len(p.data) > AUDIO_RECORD_BYTES
                if groups[-1] and full:
                    groups.append([])
                    size = 0
                groups[-1].append(p)
                size += len(p.data)
            for group in filter(None, groups):
                record = fmt.build_record(fmt.TAG_AUDIO, fmt.build_audio_body(stream, group))
                out.append((record, stream, group))
        return out

    @staticmethod
    def _entry(offset: int, record: bytes, stream: int, packets: list[AudioPacket]) -> AudioIndexEntry:
        return AudioIndexEntry(
            offset=offset, size=len(record), crc32=int.from_bytes(record[-4:], "little"), stream=stream,
            packet_count=len(packets), first_dts=packets[0].dts, last_dts=packets[-1].dts,
            start=min(p.pts for p in packets), end=max(p.pts + p.duration for p in packets),
        )

    def _write_audio(self, until: Fraction) -> None:
        """Write the queued packets that start before ``until`` seconds, in AUDP records."""
        for record, stream, packets in self._records(until):
            self._audio_entries.append(self._entry(self._pos, record, stream, packets))
            self._write(record)
            self._audio_bytes += len(record)

    def _finish_audio(self) -> None:
        """The AIDX record, right after the last chunk, then the audio still queued, which it lists."""
        pending = self._records(None)
        entry_size = fmt.AUDIO_INDEX_ENTRY.sizeof()
        pos = self._pos + fmt.RECORD_OVERHEAD + 4 + entry_size * (len(self._audio_entries) + len(pending))
        for record, stream, packets in pending:
            self._audio_entries.append(self._entry(pos, record, stream, packets))
            pos += len(record)
        index = fmt.build_record(fmt.TAG_AUDIO_INDEX, fmt.build_audio_index_body(self._audio_entries))
        self._write(index)
        for record, _, _ in pending:
            self._write(record)
        self._audio_bytes += len(index) + sum(len(record) for record, _, _ in pending)

    def close(self) -> None:
        """Write the audio index and the audio still queued, the index and the trailer, patch the frame count
        if the output is seekable, and flush.

        The file object itself is left open (its owner closes it).
        """
        if self._closed:
            return
        self._closed = True
        if self._audio:
            self._finish_audio()
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
