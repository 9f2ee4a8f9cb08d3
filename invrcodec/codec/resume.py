"""Resuming an interrupted encode: the journal beside the output (README "Resuming"; spec/invr-format.md,
"Resume journal", which is not part of the format).

While an encode writes ``OUT``, each finished chunk is appended to the journal ``OUT.part`` and made durable
(fsync) before the encoder reports it; the .invr file is assembled from the journal only once the encode is
whole, so an interrupted encode leaves the journal and no .invr file. A resumed encode re-reads the input,
checks each kept chunk's frames against the digest the journal holds, trains only the chunks after them (a
P-chunk there against the weights decoded from the kept chunks), and so writes the bytes an uninterrupted
encode writes.

Layout (integers little-endian):

* ``INVRJRNL``, u16 version (1);
* u32 n, n bytes of UTF-8 JSON: ``{"engine": ..., "settings": ...}``, what decides the bytes besides the header
  (:meth:`invrcodec.codec.executors.Executor.engine`) and the header's settings string, for messages;
* u32 n, n bytes: the FileHeader exactly as the muxer writes it first;
* u32 CRC-32 of every byte before it;
* then per finished chunk, in order: u32 n; n bytes: the SHA-256 of the chunk's input frames (RGB, frame after
  frame, 32 bytes) and the chunk's CHNK record as the .invr file holds it; u32 CRC-32 of those n bytes.

A torn or damaged last entry (the process died while appending it) is ignored, and cut off before the next
append.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from invrcodec.format import structs as fmt
from invrcodec.errors import InvrEncodeError, InvrError
from invrcodec.types import Packet, Prediction

log = logging.getLogger(__name__)

MAGIC = b"INVRJRNL"
VERSION = 1
DIGEST = 32

__all__ = ["Journal", "ResumableEncoder", "journal_path"]


def journal_path(output: str) -> str:
    """Where the journal of an encode to ``output`` lives."""
    return output + ".part"


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    """A kept chunk: the digest of its input frames, where its frames sit, and its CHNK record's place."""

    digest: bytes
    index: int
    first_frame: int
    frame_count: int
    offset: int  # of the CHNK record in the journal
    size: int


class Journal:
    """The journal file of one encode (see the module docstring)."""

    def __init__(self, path: str, header: bytes, facts: dict[str, Any], entries: list[Entry], end: int) -> None:
        self.path = path
        self.header = header
        self.facts = facts
        self.entries = entries
        self._end = end  # where the valid part ends
        self._f: BinaryIO | None = None

    @classmethod
    def create(cls, path: str, header: bytes, facts: dict[str, Any]) -> Journal:
        info = json.dumps(facts, sort_keys=True).encode()
        head = MAGIC + struct.pack("<HI", VERSION, len(info)) + info + struct.pack("<I", len(header)) + header
        head += struct.pack("<I", fmt.crc32(head))
        with open(path, "wb") as f:
            f.write(head)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(path)
        return cls(path, header, facts, [], len(head))

    @classmethod
    def read(cls, path: str) -> Journal:
        """The journal at ``path`` and its intact entries; InvrEncodeError if it is not one."""
        with open(path, "rb") as f:
            data = f.read()
        bad = InvrEncodeError(f"{path}: not a resume journal of invrcodec (or damaged at its start)")
        if data[:8] != MAGIC or len(data) < 14:
            raise bad
        version, n = struct.unpack_from("<HI", data, 8)
        if version != VERSION:
            raise InvrEncodeError(f"{path}: resume journal version {version}; this invrcodec reads {VERSION}")
        pos = 14 + n
        if pos + 4 > len(data):
            raise bad
        (h,) = struct.unpack_from("<I", data, pos)
        end = pos + 4 + h
        if end + 4 > len(data) or struct.unpack_from("<I", data, end)[0] != fmt.crc32(data[:end]):
            raise bad
        try:
            facts = json.loads(data[14:14 + n])
        except ValueError:
            raise bad from None
        journal = cls(path, data[pos + 4:end], facts, [], end + 4)
        journal._scan(data)
        return journal

    def _scan(self, data: bytes) -> None:
        pos, frames = self._end, 0
        while pos + 8 <= len(data):
            (n,) = struct.unpack_from("<I", data, pos)
            if n <= DIGEST or pos + 8 + n > len(data):
                break
            body = data[pos + 4:pos + 4 + n]
            if struct.unpack_from("<I", data, pos + 4 + n)[0] != fmt.crc32(body):
                break
            packet = _packet(body[DIGEST:], pos + 4 + DIGEST)
            if packet.index != len(self.entries) or packet.first_frame != frames:
                break
            self.entries.append(Entry(body[:DIGEST], packet.index, packet.first_frame, packet.frame_count,
                                      pos + 4 + DIGEST, n - DIGEST))
            frames += packet.frame_count
            pos += 8 + n
        self._end = pos

    def append(self, digest: bytes, packet: Packet) -> None:
        """Add a finished chunk and make it durable before returning."""
        record = fmt.build_record(fmt.TAG_CHUNK, fmt.build_chunk_body(packet))
        body = digest + record
        if self._f is None:
            self._f = open(self.path, "r+b")  # noqa: SIM115 - closed by close()
            self._f.truncate(self._end)  # a torn entry from an earlier run
        self._f.seek(self._end)
        self._f.write(struct.pack("<I", len(body)) + body + struct.pack("<I", fmt.crc32(body)))
        self._f.flush()
        os.fsync(self._f.fileno())
        self.entries.append(Entry(digest, packet.index, packet.first_frame, packet.frame_count,
                                  self._end + 4 + DIGEST, len(record)))
        self._end += 8 + len(body)

    def packet(self, i: int) -> Packet:
        """The packet of kept chunk ``i``."""
        e = self.entries[i]
        with open(self.path, "rb") as f:
            f.seek(e.offset)
            return _packet(f.read(e.size), e.offset)

    def packets(self) -> Iterator[Packet]:
        for i in range(len(self.entries)):
            yield self.packet(i)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def remove(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def refuse_other(self, header: bytes, facts: dict[str, Any]) -> None:
        """Raise unless this journal was made by an encode with this header and engine (same settings, same
        stream facts), naming what differs."""
        if header == self.header and facts.get("engine") == self.facts.get("engine"):
            return
        theirs, ours = _settings(self.facts.get("settings", "")), _settings(facts.get("settings", ""))
        diffs = [f"{k}={theirs.get(k, '-')} there, {ours.get(k, '-')} now"
                 for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
        engine_t, engine_o = self.facts.get("engine", {}), facts.get("engine", {})
        diffs += [f"{k}={engine_t.get(k)} there, {engine_o.get(k)} now"
                  for k in sorted(set(engine_t) | set(engine_o)) if engine_t.get(k) != engine_o.get(k)]
        what = ", ".join(diffs[:3]) if diffs else "another input (frame size, rate or count) or encoder version"
        raise InvrEncodeError(f"{self.path}: cannot resume: the interrupted encode had other settings ({what}); "
                              "use the same input and options, or -y to start over")


def _settings(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


def _packet(record: bytes, offset: int) -> Packet:
    try:
        r = fmt.parse_record(record, "journal chunk", offset)
        if r.tag != fmt.TAG_CHUNK:
            raise InvrEncodeError(f"journal: record at byte {offset} is not a chunk")
        return fmt.parse_chunk_body(r.body, "journal chunk", offset)
    except InvrError as exc:
        raise InvrEncodeError(f"journal: {exc}") from exc


def frames_digest(frames: list[np.ndarray]) -> bytes:
    h = hashlib.sha256()
    for f in frames:
        h.update(np.ascontiguousarray(f).data)
    return h.digest()


class ResumableEncoder:
    """An :class:`~invrcodec.codec.encoder.Encoder` whose finished chunks go to a journal; ``encode`` returns each
    packet once it is durable (with ``resume``, the kept ones first, as their frames are read again).

    The input frames of kept chunks are checked against their digests and not trained again; a journal of
    another encode (other settings, another input) is refused. :meth:`packets` gives every packet for the
    muxer once the encode is whole; :meth:`remove` deletes the journal after the output is in place.
    """

    def __init__(self, encoder: Any, path: str, *, resume: bool = False) -> None:
        self.encoder = encoder
        self.path = path
        self._header = fmt.build_header(encoder.header)
        self._facts = {"engine": encoder.executor.engine(), "settings": encoder.header.metadata.settings}
        self._journal: Journal | None = None
        self._pending: list[np.ndarray] = []
        self._digests: dict[int, bytes] = {}
        self._chunk = 0  # chunk of the frames being read
        self._frames = 0
        self._kept = 0
        if resume and os.path.exists(path):
            journal = Journal.read(path)
            journal.refuse_other(self._header, self._facts)
            self._journal = journal
            self._start(journal)

    @property
    def kept(self) -> int:
        """Chunks taken from the journal instead of trained."""
        return self._kept

    def _start(self, journal: Journal) -> None:
        entries = journal.entries
        self._kept = len(entries)
        if not entries:
            return
        nxt = len(entries)
        last = entries[-1]
        reference = None
        if self.encoder.prediction_of(nxt) != Prediction.KEY:
            reference = self._reconstruct(journal, nxt - 1)
        self.encoder.resume_at(nxt, last.first_frame + last.frame_count, reference, list(journal.packets()))
        log.info("%s: resuming after %d finished chunks (frames 0-%d)", journal.path, nxt,
                 last.first_frame + last.frame_count - 1)

    def _reconstruct(self, journal: Journal, index: int) -> tuple[dict[str, np.ndarray], ...]:
        """The weights of kept chunk ``index`` (one network per tile) as a decoder rebuilds them, from the key
        chunk before it."""
        from invrcodec.coding.weights import decode_weights
        from invrcodec.format.structs import tile_tensors

        start = index
        while start > 0 and journal.packet(start).prediction != Prediction.KEY:
            start -= 1
        header = self.encoder.header
        rep, coder, tiles = header.representation, header.coder, len(header.tile_list())
        weights: tuple[dict[str, np.ndarray], ...] | None = None
        for i in range(start, index + 1):
            p = journal.packet(i)
            refs = [None] * tiles if weights is None or p.prediction == Prediction.KEY else list(weights)
            weights = tuple(decode_weights(tensors, rep, coder, ref)
                            for tensors, ref in zip(tile_tensors(p, header), refs))
        assert weights is not None
        return weights

    def encode(self, frame: np.ndarray | None) -> list[Packet]:
        """Add one frame (or flush with ``None``); return the packets now durable, in order."""
        n = self.encoder.header.representation.chunk_frames
        out: list[Packet] = []
        if frame is not None:
            chunk = self._chunk
            self._pending.append(frame)
            if len(self._pending) == n:
                out += self._chunk_read()
            if chunk >= self._kept:
                out += self._durable(self.encoder.encode(frame))
            return out
        if self._pending:
            out += self._chunk_read()
        if self._chunk < self._kept:
            raise InvrEncodeError(f"{self.path}: the input ends at frame {self._frames}, before the "
                                  f"{self._kept} chunks of the interrupted encode: not the same input")
        return out + self._durable(self.encoder.encode(None))

    def _chunk_read(self) -> list[Packet]:
        """The frames of one chunk are in: check them against a kept chunk, or remember their digest."""
        frames, self._pending = self._pending, []
        digest, index = frames_digest(frames), self._chunk
        self._chunk += 1
        first, self._frames = self._frames, self._frames + len(frames)
        if index >= self._kept:
            self._digests[index] = digest
            return []
        assert self._journal is not None
        e = self._journal.entries[index]
        if e.digest != digest or e.frame_count != len(frames):
            raise InvrEncodeError(f"{self.path}: frames {first}-{self._frames - 1} of the input differ from "
                                  "those of the interrupted encode: not the same input (-y starts over)")
        log.info("chunk %d: kept from %s (frames %d-%d)", index, self.path, first, self._frames - 1)
        return [self._journal.packet(index)]

    def _durable(self, packets: list[Packet]) -> list[Packet]:
        for p in packets:
            if self._journal is None:
                self._journal = Journal.create(self.path, self._header, self._facts)
            self._journal.append(self._digests.pop(p.index), p)
        return packets

    def packets(self) -> Iterator[Packet]:
        """Every chunk's packet, in order, for the muxer."""
        if self._journal is not None:
            yield from self._journal.packets()

    def close(self) -> int:
        """Stop appending (the journal stays); the number of chunks it holds."""
        if self._journal is None:
            return 0
        self._journal.close()
        return len(self._journal.entries)

    def remove(self) -> None:
        """Delete the journal (once the output is in place)."""
        if self._journal is not None:
            self._journal.remove()
