"""Reading .invr bytes (spec/invr-format.md, "Reading" and "Error handling").

A seekable input is read randomly: preamble and header, then the trailer and the index with one seek to the
end, then only the chunks asked for. A pipe is read sequentially, record by record, and its index is checked
against the chunks once it arrives. Either way every CRC is verified before the bytes it covers are
interpreted, nothing is allocated from a length field before that length is checked against the spec's limits
and the file's size (pipes are read in bounded pieces), and only :class:`InvrFormatError` escapes.

Tiles (3.0, 4.0): the header's tile grid comes from its HeaderBodyV3, or from its HeaderBodyV4 with the tiles'
overlap (0 in a 3.x file); a chunk's packet holds every tile's tensors, their count checked against the grid
before the packet leaves the demuxer.

Audio (2.1): the streams come from the header's AUDS extensions. On a seekable input the AIDX record (right
after the last chunk) says where each AUDP record is and what span it holds, so the audio of a frame range is
read without the rest; on a pipe the AUDP records are met in order, each checked as it arrives, and the AIDX
record is checked against them.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import struct
from collections.abc import Iterator
from fractions import Fraction
from typing import BinaryIO, Union

from invrcodec.format import structs as fmt
from invrcodec.format import rules
from invrcodec.errors import (
    ChecksumError,
    InvrError,
    InvrFormatError,
    MalformedError,
    TruncatedError,
    UnsupportedVersionError,
)
from invrcodec.fileio import is_seekable
from invrcodec.types import (
    AudioIndexEntry,
    AudioPacket,
    AudioStreamInfo,
    Header,
    IndexEntry,
    Packet,
    Prediction,
)

__all__ = ["Demuxer"]

log = logging.getLogger(__name__)

_PIECE = 1 << 20  # largest single read: a lying length field costs at most this before EOF is seen
_MIN_CHUNK_RECORD = fmt.RECORD_OVERHEAD + 24  # framing + the fixed ChunkBody fields
_MIN_AUDIO_RECORD = fmt.RECORD_OVERHEAD + fmt.AUDIO_BODY_FIXED_SIZE  # framing + AudioPacketsBody's fixed part

Demuxed = Union[Packet, AudioPacket]


def _overlaps(start: int, end: int, tb: Fraction, lo: Fraction | None, hi: Fraction | None) -> bool:
    """Whether ticks [start, end) of time base ``tb`` meet seconds [lo, hi) (None: unbounded); a span of no
    length (a packet of unknown duration) is the instant ``start``."""
    if hi is not None and start * tb >= hi:
        return False
    if lo is None:
        return True
    return end * tb > lo if end > start else start * tb >= lo


def _same_float(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b)


class _Bytes:
    """The stream's bytes: read anywhere on a seekable input, in order on a pipe, in bounded pieces."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._f = fileobj
        self.seekable = is_seekable(fileobj)
        self._pos = 0  # sequential mode: bytes consumed so far
        self._base = 0
        self.size: int | None = None  # known on a seekable input; a pipe's once it has been read through
        if self.seekable:
            self._base = fileobj.tell()
            self.size = fileobj.seek(0, io.SEEK_END) - self._base
            fileobj.seek(self._base)

    def read(self, offset: int, n: int, what: str, *, partial_ok: bool = False) -> bytes:
        """``n`` bytes at ``offset`` (sequential mode: ``offset`` is where the stream stands)."""
        if self.seekable:
            size = self.size if self.size is not None else 0
            if offset + n > size and not partial_ok:
                raise TruncatedError(
                    f"{what}: truncated: needs bytes {offset}..{offset + n}, the file has {size}",
                    min(offset, size),
                )
            self._f.seek(self._base + offset)
        elif offset != self._pos:
            raise InvrError(f"internal: sequential read at {offset}, stream at {self._pos}")
        pieces: list[bytes] = []
        got = 0
        while got < n:
            piece = self._f.read(min(n - got, _PIECE))
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        if not self.seekable:
            self._pos += got
        data = b"".join(pieces)
        if got < n and not partial_ok:
            raise TruncatedError(f"{what}: truncated at byte {offset + got}", offset + got)
        return data

    def record_after(self, head: bytes, pos: int, what: str) -> tuple[fmt.Record, int]:
        """The record whose 8-byte head (already read) is at ``pos``, CRC-checked, and its size in bytes."""
        _, length = fmt.parse_record_head(head, pos, what)
        fmt.check_record_length(length, what, pos)
        data = head + self.read(pos + fmt.RECORD_HEAD_SIZE, length + 4, what)
        return fmt.parse_record(data, what, pos), len(data)

    def trailer(self, at: int, missing: InvrFormatError) -> int:
        """The index offset of the TAIL record at ``at``; ``missing`` is raised where there is none."""
        tail = self.read(at, fmt.TRAILER_SIZE, "trailer")
        tag, length = fmt.parse_record_head(tail[: fmt.RECORD_HEAD_SIZE], at, "trailer")
        if tag != fmt.TAG_TRAILER or length != fmt.TRAILER_BODY_SIZE:
            raise missing
        rec = fmt.parse_record(tail, "trailer", at)
        return fmt.parse_trailer_body(rec.body, at + fmt.RECORD_HEAD_SIZE)


def _read_header(src: _Bytes) -> tuple[fmt.Preamble, Header, tuple[fmt.Extension, ...], int]:
    """Preamble, header, its extensions and where it ends; a version this reader does not implement is
    refused, a newer minor read."""
    pre_bytes = src.read(0, fmt.PREAMBLE_SIZE, "preamble", partial_ok=True)
    if pre_bytes[: len(fmt.MAGIC)] != fmt.MAGIC[: len(pre_bytes)] or not pre_bytes:
        raise MalformedError("not an INVR file (bad magic)", 0)
    if len(pre_bytes) < fmt.PREAMBLE_SIZE:
        raise TruncatedError(f"preamble: truncated at byte {len(pre_bytes)}", len(pre_bytes))
    pre = fmt.parse_preamble(pre_bytes)
    if pre.major not in fmt.READABLE_MAJORS:
        *first, last = [f"{m}.x" for m in fmt.READABLE_MAJORS]
        majors = f"{', '.join(first)} and {last}" if first else last
        raise UnsupportedVersionError(
            f"format version {pre.major}.{pre.minor} is not supported (this reader implements {majors})",
            8,
        )
    newest = fmt.NEWEST_MINOR[pre.major]
    if pre.minor > newest:
        log.info(
            "format version %d.%d is newer than %d.%d: unknown extensions are skipped",
            pre.major,
            pre.minor,
            pre.major,
            newest,
        )
    limit = fmt.LIMITS["max_header_length"]
    if pre.header_length > limit:
        raise MalformedError(f"header: length {pre.header_length} exceeds {limit}", 12)
    rest = src.read(fmt.PREAMBLE_SIZE, pre.header_length + fmt.HEADER_CRC_SIZE, "header")
    body = fmt.verify_header(pre_bytes + rest)
    header, extensions = fmt.parse_header_body(body, fmt.PREAMBLE_SIZE, pre.major)
    rules.check_header(header, fmt.PREAMBLE_SIZE)
    for e in extensions:
        log.debug("skipping header extension %r (%d bytes)", e.tag, len(e.value))
    return pre, header, extensions, fmt.PREAMBLE_SIZE + pre.header_length + fmt.HEADER_CRC_SIZE


def _check_entries(entries: list[IndexEntry], header: Header, start: int, end: int) -> None:
    """Refuse an index whose chunks do not follow each other between bytes ``start`` and ``end``."""
    frame, pos = 0, start
    chunk_frames = header.representation.chunk_frames
    for i, e in enumerate(entries):
        what = f"index: chunk {i}"
        if e.first_frame != frame:
            raise MalformedError(f"{what}: first_frame {e.first_frame}, expected {frame}")
        if not 1 <= e.frame_count <= chunk_frames:
            raise MalformedError(f"{what}: frame_count {e.frame_count} not in 1..{chunk_frames}")
        if e.offset < pos or e.size < _MIN_CHUNK_RECORD or e.offset + e.size > end:
            raise MalformedError(f"{what}: bytes {e.offset}..{e.offset + e.size} out of place")
        frame += e.frame_count
        pos = e.offset + e.size
    if frame > 0xFFFFFFFF:
        raise MalformedError("index: more than 2^32 - 1 frames")


def _record_name(tag: bytes, pos: int, chunk: str) -> str:
    """What a record met in a pipe is called in messages."""
    names = {fmt.TAG_CHUNK: chunk, fmt.TAG_INDEX: "index", fmt.TAG_TRAILER: "trailer",
             fmt.TAG_AUDIO: f"audio record at byte {pos}", fmt.TAG_AUDIO_INDEX: "audio index"}
    return names.get(tag, f"record at byte {pos} (tag {tag!r})")


class Demuxer:
    """Reads one .invr stream from a binary file object; see :func:`invrcodec.open` for the public face.

    The constructor reads and checks the header (and, on a seekable input, the trailer and the index).
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._src = _Bytes(fileobj)
        self.seekable = self._src.seekable
        self._index: list[IndexEntry] | None = None
        self._audio_index: list[AudioIndexEntry] | None = None
        self._index_offset = 0
        self._sequential_started = False
        self.preamble, self.file_header, self.extensions, self.header_end = _read_header(self._src)
        self.audio_streams: tuple[AudioStreamInfo, ...] = fmt.audio_streams(self.extensions)
        for i, a in enumerate(self.audio_streams):
            rules.check_audio_stream(a, f"header: audio stream {i}", fmt.PREAMBLE_SIZE)
        if self.seekable:
            self._index = self._read_index()
            if self.audio_streams:
                self._audio_index = self._read_audio_index()
            else:
                self._no_audio_after_chunks()

    # -- public facts ------------------------------------------------------------------------------------

    @property
    def version(self) -> tuple[int, int]:
        return (self.preamble.major, self.preamble.minor)

    @property
    def size(self) -> int | None:
        """Size of the stream in bytes: known on a seekable input, or once a pipe has been read through."""
        return self._src.size

    @property
    def index(self) -> list[IndexEntry] | None:
        """The chunk index, or None while a pipe has not been read to its end."""
        return None if self._index is None else list(self._index)

    @property
    def audio_index(self) -> list[AudioIndexEntry] | None:
        """The audio records' index (empty without audio); None while a pipe has not been read to its end."""
        if not self.audio_streams:
            return [] if self._index is not None else None
        return None if self._audio_index is None else list(self._audio_index)

    @property
    def header(self) -> Header:
        """The header, with ``stream.frame_count`` the index's true count once the index is known."""
        h = self.file_header
        if self._index is not None:
            total = sum(e.frame_count for e in self._index)
            if total != h.stream.frame_count:
                h = dataclasses.replace(h, stream=dataclasses.replace(h.stream, frame_count=total))
        return h

    # -- index -------------------------------------------------------------------------------------------

    def _read_index(self) -> list[IndexEntry]:
        size = self._src.size or 0
        smallest_index = fmt.RECORD_OVERHEAD + 4
        if size < self.header_end + smallest_index + fmt.TRAILER_SIZE:
            raise TruncatedError(f"file ends at byte {size} before its index (truncated or unfinished)", size)
        at = size - fmt.TRAILER_SIZE
        index_offset = self._src.trailer(
            at, TruncatedError("no trailer at the end of the file (truncated or unfinished)", at)
        )
        if not self.header_end <= index_offset <= at - smallest_index:
            raise MalformedError(f"trailer: index offset {index_offset} outside the file", at)
        head = self._src.read(index_offset, fmt.RECORD_HEAD_SIZE, "index")
        tag, length = fmt.parse_record_head(head, index_offset, "index")
        if tag != fmt.TAG_INDEX:
            raise MalformedError(f"index: no index record at byte {index_offset}", index_offset)
        fmt.check_record_length(length, "index", index_offset)
        if index_offset + fmt.RECORD_OVERHEAD + length != at:
            raise MalformedError("index: does not end where the trailer starts", index_offset)
        rec, _ = self._src.record_after(head, index_offset, "index")
        entries = self._index_body(rec, index_offset)
        _check_entries(entries, self.file_header, self.header_end, index_offset)
        self._index_offset = index_offset
        return entries

    def _read_audio_index(self) -> list[AudioIndexEntry]:
        """The AIDX record, which follows the last chunk (or the header), checked against the chunks."""
        chunks = self._index or []
        at = chunks[-1].offset + chunks[-1].size if chunks else self.header_end
        end = self._index_offset
        if at + fmt.RECORD_OVERHEAD + 4 > end:
            raise MalformedError(f"audio index: none after the last chunk (byte {at})", at)
        head = self._src.read(at, fmt.RECORD_HEAD_SIZE, "audio index")
        tag, length = fmt.parse_record_head(head, at, "audio index")
        if tag != fmt.TAG_AUDIO_INDEX:
            raise MalformedError(f"audio index: none after the last chunk (byte {at} holds {tag!r})", at)
        fmt.check_record_length(length, "audio index", at)
        if at + fmt.RECORD_OVERHEAD + length > end:
            raise MalformedError("audio index: runs into the index", at)
        rec, size = self._src.record_after(head, at, "audio index")
        entries = fmt.parse_audio_index_body(rec.body, at + fmt.RECORD_HEAD_SIZE)
        self._check_audio_entries(entries, [(e.offset, e.size) for e in chunks] + [(at, size)], at)
        return entries

    def _no_audio_after_chunks(self) -> None:
        """A file that declares no audio stream has no audio index where one would be."""
        chunks = self._index or []
        at = chunks[-1].offset + chunks[-1].size if chunks else self.header_end
        if at + fmt.RECORD_HEAD_SIZE <= self._index_offset:
            tag, _ = fmt.parse_record_head(self._src.read(at, fmt.RECORD_HEAD_SIZE, "record"), at)
            if tag in (fmt.TAG_AUDIO, fmt.TAG_AUDIO_INDEX):
                raise MalformedError(f"audio record at byte {at} in a file that declares no audio stream", at)

    def _check_audio_entries(self, entries: list[AudioIndexEntry], taken: list[tuple[int, int]],
                             at: int) -> None:
        """Refuse an audio index whose records are out of place (outside the records' area, out of order,
        overlapping the chunks (``taken``: offset and size of each), the audio index or each other) or whose
        spans cannot be (stream, counts, dts order)."""
        n = len(self.audio_streams)
        last: dict[int, int] = {}
        pos = self.header_end
        for i, e in enumerate(entries):
            what = f"audio index entry {i}"
            if not 0 <= e.stream < n:
                raise MalformedError(f"{what}: audio stream {e.stream}, the header declares {n}", at)
            least = _MIN_AUDIO_RECORD + fmt.AUDIO_PACKET_FIXED_SIZE * e.packet_count
            if e.packet_count < 1 or e.size < least:
                raise MalformedError(f"{what}: {e.packet_count} packets in {e.size} bytes", at)
            if e.offset < pos or e.offset + e.size > self._index_offset:
                raise MalformedError(f"{what}: bytes {e.offset}..{e.offset + e.size} out of place", at)
            pos = e.offset + e.size
            if e.first_dts > e.last_dts or e.start > e.end:
                raise MalformedError(f"{what}: dts {e.first_dts}..{e.last_dts}, span {e.start}..{e.end}", at)
            if e.stream in last and e.first_dts < last[e.stream]:
                before = last[e.stream]
                raise MalformedError(f"{what}: dts {e.first_dts} before the previous record's {before}", at)
            last[e.stream] = e.last_dts
        spans = sorted([(e.offset, e.size) for e in entries] + taken)
        for (a, sa), (b, _) in zip(spans, spans[1:]):
            if a + sa > b:
                raise MalformedError(f"audio index: the record at byte {a} overlaps the one at byte {b}", at)

    def _index_body(self, rec: fmt.Record, pos: int) -> list[IndexEntry]:
        return fmt.parse_index_body(rec.body, pos + fmt.RECORD_HEAD_SIZE, self.preamble.major)

    # -- chunks ------------------------------------------------------------------------------------------

    def _packet(self, rec: fmt.Record, i: int, first_frame: int, what: str, offset: int) -> Packet:
        """The packet of CHNK record ``rec``, checked as chunk ``i`` starting at ``first_frame``."""
        packet = fmt.parse_chunk_body(rec.body, what, offset + fmt.RECORD_HEAD_SIZE, self.preamble.major)
        if packet.index != i:
            raise MalformedError(f"{what}: numbered {packet.index}", offset)
        if packet.first_frame != first_frame:
            raise MalformedError(f"{what}: first_frame {packet.first_frame}, expected {first_frame}", offset)
        fmt.check_packet(packet, self.file_header, what, offset)
        rules.check_packet(packet, self.file_header, what, offset)
        return packet

    def demux(
        self, first_frame: int = 0, frame_count: int | None = None, *,
        audio: tuple[Fraction | None, Fraction | None] | None = None,
    ) -> Iterator[Demuxed]:
        """The packets of the chunks that hold frames [first_frame, first_frame + frame_count).

        Each chunk's CRC32 is verified before its packet is made. On a seekable input only those chunks
        are read; a pipe is read in order up to the last chunk needed (to its end when the range is open).
        ``audio=(lo, hi)`` adds, in file order, the audio packets that meet seconds [lo, hi) (None:
        unbounded), each record's CRC32 verified first; a pipe is then read on until they are all in.
        """
        if first_frame < 0 or (frame_count is not None and frame_count < 0):
            raise ValueError("first_frame and frame_count must be >= 0")
        stop = None if frame_count is None else first_frame + frame_count
        if stop is not None and stop <= first_frame and audio is None:
            return iter(())
        if self.seekable:
            return self._demux_random(first_frame, stop, audio)
        if self._sequential_started:
            raise InvrError("a pipe can be demuxed only once")
        self._sequential_started = True
        return self._demux_sequential(first_frame, stop, audio)

    def demux_audio(self, lo: Fraction | None = None, hi: Fraction | None = None) -> Iterator[AudioPacket]:
        """The audio packets that meet seconds [lo, hi) (None: unbounded), in file order; on a seekable input
        only the records that hold them are read (a pipe is read through, its chunks checked and dropped)."""
        for p in self.demux(0, 0, audio=(lo, hi)):
            if isinstance(p, AudioPacket):
                yield p

    def _audio_packets(self, rec: fmt.Record, what: str, offset: int,
                       last: dict[int, int]) -> tuple[AudioPacket, ...]:
        """The packets of AUDP record ``rec``, checked (``last``: each stream's latest dts, updated)."""
        packets = fmt.parse_audio_body(rec.body, what, offset + fmt.RECORD_HEAD_SIZE)
        stream = packets[0].stream
        dts = rules.check_audio_packets(packets, len(self.audio_streams), last.get(stream), what, offset)
        if dts is not None:
            last[stream] = dts
        return packets

    def _wanted_audio(self, packets: tuple[AudioPacket, ...],
                      span: tuple[Fraction | None, Fraction | None] | None) -> Iterator[AudioPacket]:
        if span is None:
            return
        for p in packets:
            if _overlaps(p.pts, p.pts + p.duration, self.audio_streams[p.stream].time_base, *span):
                yield p

    def _read_audio(self, i: int, e: AudioIndexEntry) -> tuple[AudioPacket, ...]:
        """The packets of the AUDP record of audio index entry ``i``, checked against the entry."""
        what = f"audio record {i}"
        data = self._src.read(e.offset, e.size, what)
        tag, length = fmt.parse_record_head(data[: fmt.RECORD_HEAD_SIZE], e.offset, what)
        if tag != fmt.TAG_AUDIO or length + fmt.RECORD_OVERHEAD != e.size:
            raise MalformedError(f"{what}: the audio index points at no audio record (byte {e.offset})",
                                 e.offset)
        rec = fmt.parse_record(data, what, e.offset)
        if rec.crc32 != e.crc32:
            raise ChecksumError(f"{what}: checksum does not match the audio index", e.offset)
        packets = self._audio_packets(rec, what, e.offset, {})
        if _audio_entry(e.offset, rec, packets) != e:
            raise MalformedError(f"{what}: does not match its audio index entry", e.offset)
        return packets

    def _demux_random(self, lo: int, hi: int | None,
                      audio: tuple[Fraction | None, Fraction | None] | None) -> Iterator[Demuxed]:
        entries = self._index or []
        first = next((i for i, e in enumerate(entries) if e.first_frame + e.frame_count > lo), len(entries))
        while 0 < first < len(entries) and entries[first].prediction != Prediction.KEY:
            first -= 1  # a P-chunk needs the chunks back to the key chunk before it
        wanted = [] if hi is not None and hi <= lo else [
            i for i in range(first, len(entries)) if hi is None or entries[i].first_frame < hi
        ]
        reads = [(entries[i].offset, i) for i in wanted]  # (offset, chunk i >= 0, or audio record -1 - i)
        if audio is not None:
            lo_s, hi_s = audio
            for k, a in enumerate(self._audio_index or []):  # (its packets are then picked one by one)
                tb = self.audio_streams[a.stream].time_base
                if (hi_s is None or a.start * tb < hi_s) and (lo_s is None or a.end * tb >= lo_s):
                    reads.append((a.offset, -1 - k))
        for _, i in sorted(reads):
            if i < 0:
                k = -1 - i
                yield from self._wanted_audio(self._read_audio(k, (self._audio_index or [])[k]), audio)
                continue
            e = entries[i]
            what = f"chunk {i}"
            data = self._src.read(e.offset, e.size, what)
            tag, length = fmt.parse_record_head(data[: fmt.RECORD_HEAD_SIZE], e.offset, what)
            if tag != fmt.TAG_CHUNK or length + fmt.RECORD_OVERHEAD != e.size:
                raise MalformedError(f"{what}: the index points at no chunk (byte {e.offset})", e.offset)
            rec = fmt.parse_record(data, what, e.offset)
            if rec.crc32 != e.crc32:
                raise ChecksumError(f"{what}: checksum does not match the index", e.offset)
            packet = self._packet(rec, i, e.first_frame, what, e.offset)
            if (packet.frame_count != e.frame_count or packet.prediction != e.prediction
                    or not _same_float(packet.train_psnr, e.train_psnr)):
                raise MalformedError(f"{what}: does not match its index entry", e.offset)
            yield packet

    def _demux_sequential(self, lo: int, hi: int | None,
                          audio: tuple[Fraction | None, Fraction | None] | None) -> Iterator[Demuxed]:
        pos = self.header_end
        entries: list[IndexEntry] = []
        since_key: list[Packet] = []  # the chunks a P-chunk needs, held until the range starts
        frame = 0
        video_done = hi is not None and hi <= lo
        audio_done = audio is None or not self.audio_streams
        audio_seen: list[AudioIndexEntry] = []
        audio_index: list[AudioIndexEntry] | None = None
        last_dts: dict[int, int] = {}
        past: set[int] = set()  # the streams whose records have gone past the audio span
        previous = b""  # the tag of the record before (b"" for the header)
        while not (video_done and audio_done):
            head = self._src.read(pos, fmt.RECORD_HEAD_SIZE, f"chunk {len(entries)}", partial_ok=True)
            if not head:
                raise TruncatedError(f"stream ends at byte {pos} without an index (truncated or unfinished)", pos)
            if len(head) < fmt.RECORD_HEAD_SIZE:
                raise TruncatedError(f"chunk {len(entries)}: truncated at byte {pos + len(head)}", pos + len(head))
            tag, _ = fmt.parse_record_head(head, pos, f"chunk {len(entries)}")
            what = _record_name(tag, pos, f"chunk {len(entries)}")
            rec, size = self._src.record_after(head, pos, what)
            if tag == fmt.TAG_CHUNK and audio_index is not None:
                raise MalformedError(f"{what}: after the audio index (byte {pos})", pos)
            if tag == fmt.TAG_CHUNK:
                packet = self._packet(rec, len(entries), frame, what, pos)
                entries.append(IndexEntry(packet.first_frame, packet.frame_count, pos, size, rec.crc32,
                                          packet.train_psnr, packet.prediction))
                frame += packet.frame_count
                if video_done:
                    pass
                elif frame > lo:
                    if packet.prediction != Prediction.KEY:
                        yield from since_key  # the first chunk of the range is predicted from these
                    since_key = []
                    yield packet
                elif packet.prediction == Prediction.KEY:
                    since_key = [packet]
                else:
                    since_key.append(packet)
                if hi is not None and frame >= hi:
                    video_done = True
            elif tag == fmt.TAG_AUDIO:
                if not self.audio_streams:
                    raise MalformedError(f"{what}: audio in a file that declares no audio stream", pos)
                packets = self._audio_packets(rec, what, pos, last_dts)
                audio_seen.append(_audio_entry(pos, rec, packets))
                yield from self._wanted_audio(packets, audio)
                stream = packets[0].stream
                if audio is not None and audio[1] is not None and \
                        audio_seen[-1].start * self.audio_streams[stream].time_base >= audio[1]:
                    past.add(stream)
                    audio_done = audio_done or len(past) == len(self.audio_streams)
            elif tag == fmt.TAG_AUDIO_INDEX:
                if not self.audio_streams:
                    raise MalformedError("audio index in a file that declares no audio stream", pos)
                if audio_index is not None or previous not in (b"", fmt.TAG_CHUNK):
                    raise MalformedError(f"audio index at byte {pos} does not follow the last chunk", pos)
                audio_index = fmt.parse_audio_index_body(rec.body, pos + fmt.RECORD_HEAD_SIZE)
                if audio_index[: len(audio_seen)] != audio_seen:
                    raise MalformedError("audio index: does not match the audio records read", pos)
            elif tag == fmt.TAG_INDEX:
                if self._index_body(rec, pos) != entries:
                    raise MalformedError("index: does not match the chunks read", pos)
                if self.audio_streams and audio_index is None:
                    raise MalformedError(f"no audio index before the index at byte {pos}", pos)
                if audio_index is not None and audio_index != audio_seen:
                    raise MalformedError("audio index: does not match the audio records read", pos)
                self._read_final_trailer(pos + size, pos)
                self._index = entries
                self._audio_index = audio_index
                return
            elif tag == fmt.TAG_TRAILER:
                raise MalformedError(f"trailer at byte {pos} before any index", pos)
            else:
                log.debug("skipping unknown record %r at byte %d", tag, pos)
            previous = tag
            pos += size

    def _read_final_trailer(self, pos: int, index_offset: int) -> None:
        """A pipe's last record: the trailer, pointing at the index just read, and nothing after it."""
        if self._src.trailer(pos, MalformedError(f"trailer: expected at byte {pos}", pos)) != index_offset:
            raise MalformedError("trailer: points elsewhere than the index", pos)
        end = pos + fmt.TRAILER_SIZE
        if self._src.read(end, 1, "end", partial_ok=True):
            raise MalformedError(f"bytes after the trailer at byte {end}", end)
        self._src.size = end


def _audio_entry(offset: int, rec: fmt.Record, packets: tuple[AudioPacket, ...]) -> AudioIndexEntry:
    """The audio index entry that describes AUDP record ``rec`` at ``offset``."""
    return AudioIndexEntry(
        offset=offset, size=fmt.RECORD_OVERHEAD + len(rec.body), crc32=rec.crc32, stream=packets[0].stream,
        packet_count=len(packets), first_dts=packets[0].dts, last_dts=packets[-1].dts,
        start=min(p.pts for p in packets), end=max(p.pts + p.duration for p in packets),
    )
