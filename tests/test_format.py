"""The .invr container: Struct round trips, muxer/demuxer on files and pipes, versions, the golden file.

spec/invr-format.md is the reference; tests/test_spec.py checks the spec's tables against the Structs.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from fractions import Fraction
from pathlib import Path

import construct as c
import pytest
from conftest import sample_script
from hypothesis import given, settings
from hypothesis import strategies as st

import invrcodec
from invrcodec.format import structs as fmt
from invrcodec.format.demuxer import Demuxer
from invrcodec.errors import (
    ChecksumError,
    InvrError,
    InvrFormatError,
    MalformedError,
    TruncatedError,
    UnsupportedVersionError,
)
from invrcodec.format.muxer import Muxer
from invrcodec.types import (
    CodedTensor,
    CoderKind,
    CoderParams,
    CoordConvention,
    EncodingKind,
    Header,
    IndexEntry,
    Metadata,
    NetworkKind,
    Packet,
    Prediction,
    Representation,
    StreamInfo,
    TileGrid,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "samples" / "tiny.invr"  # version 2.0: a key chunk and a P-chunk
GOLDEN_V1 = ROOT / "samples" / "tiny-1.0.invr"  # the 1.0 golden file, which every later reader must read
GOLDEN_AUDIO = ROOT / "samples" / "tiny-audio.invr"  # version 2.1: tiny.invr's chunks with an AAC tone
GOLDEN_TILES = ROOT / "samples" / "tiny-tiles.invr"  # version 3.0: tiny.invr's clip in four tiles of 8x8

REP = Representation(hidden=16, layers=2, enc_dims=(4, 4, 2), chunk_frames=3)
HEADER = Header(
    StreamInfo(24, 16, 0, frame_rate=Fraction(30000, 1001), time_base=Fraction(1001, 30000)),
    REP,
    CoderParams(nncodec_version="2.1.3"),
    Metadata("invrcodec test", "preset=test qp=38"),
)


def packet(i: int, first: int, n: int, header: Header = HEADER, size: int = 17) -> Packet:
    shapes = header.representation.tensor_shapes() * fmt.tile_count(header)  # every tile's, tile 0's first
    per = {CoderKind.RAW_FLOAT32: 4, CoderKind.RAW_FLOAT16: 2}.get(header.coder.kind)
    tensors = []
    for j, (_, shape) in enumerate(shapes):
        length = per * math.prod(shape) if per else size + j
        tensors.append(
            CodedTensor(
                qp=-40 + j if per is None else 0, data=bytes((i * 7 + j + k) % 256 for k in range(length))
            )
        )
    return Packet(i, first, n, tuple(tensors), 30.25 + i / 3)


def packets(frames: int, header: Header = HEADER) -> list[Packet]:
    out, first, i = [], 0, 0
    cf = header.representation.chunk_frames
    while first < frames:
        n = min(cf, frames - first)
        out.append(packet(i, first, n, header))
        first, i = first + n, i + 1
    return out


def write(pkts: list[Packet], header: Header = HEADER, out: io.IOBase | None = None) -> bytes:
    buf = out if out is not None else io.BytesIO()
    with invrcodec.open(buf, "w", header=header) as container:
        container.mux(pkts)
    return buf.getvalue()  # type: ignore[attr-defined]


class PipeReader(io.RawIOBase):
    """A non-seekable reader that hands out at most ``piece`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, piece: int = 5) -> None:
        self._b = io.BytesIO(data)
        self._piece = piece
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        self.reads += 1
        d = self._b.read(min(len(b), self._piece))
        b[: len(d)] = d
        return len(d)


class PipeWriter(io.RawIOBase):
    """A non-seekable writer that takes at most 3 bytes per write."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += bytes(b[:3])
        return min(3, len(b))

    def getvalue(self) -> bytes:
        return bytes(self.data)


class CountingFile(io.BytesIO):
    """A seekable file that records which byte ranges were read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.ranges: list[tuple[int, int]] = []

    def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
        start = self.tell()
        d = super().read(n)
        self.ranges.append((start, start + len(d)))
        return d


# --- Structs: round trips -------------------------------------------------------------------------------


def _golden_pieces(path: Path = GOLDEN, suffix: str = "") -> dict[str, list[bytes]]:
    """Bytes of every kind of structure, cut from a golden file (``suffix``: the version's struct names)."""
    data = path.read_bytes()
    pre = fmt.PREAMBLE.parse(data[:16])
    body_end = 16 + pre.header_length
    pieces: dict[str, list[bytes]] = {
        "Preamble": [data[:16]],
        "FileHeader": [data[: body_end + 4]],
        "HeaderBody": [data[16:body_end]],
    }
    pos = body_end + 4
    while pos < len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        record = data[pos : pos + 12 + length]
        pieces.setdefault("Record", []).append(record)
        body = record[8:-4]
        name = {b"CHNK": "ChunkBody" + suffix, b"INDX": "IndexBody" + suffix, b"TAIL": "TrailerBody",
                b"AUDP": "AudioPacketsBody", b"AIDX": "AudioIndexBody"}[record[:4]]
        pieces.setdefault(name, []).append(body)
        pos += len(record)
    return pieces


def test_build_parse_bytes_identity_on_golden_structures() -> None:
    pieces = _golden_pieces()
    header_body = fmt.HEADER_BODY.parse(pieces["HeaderBody"][0])
    nested = {
        "StreamInfo": fmt.STREAM_INFO.build(header_body.stream),
        "Representation": fmt.REPRESENTATION.build(header_body.representation),
        "CoderParams": fmt.CODER_PARAMS.build(header_body.coder),
        "Metadata": fmt.METADATA.build(header_body.metadata),
    }
    for name, data in nested.items():
        pieces[name] = [data]
    chunk = fmt.CHUNK_BODY.parse(pieces["ChunkBody"][0])
    pieces["CodedTensor"] = [fmt.CODED_TENSOR.build(t) for t in chunk.tensors]
    index = fmt.INDEX_BODY.parse(pieces["IndexBody"][0])
    pieces["IndexEntry"] = [fmt.INDEX_ENTRY.build(e) for e in index.entries]
    pieces["Extension"] = [fmt.EXTENSION.build({"tag": b"TEST", "value": b"\x00\x01xyz"})]
    v1 = _golden_pieces(GOLDEN_V1, "V1")
    pieces["ChunkBodyV1"], pieces["IndexBodyV1"] = v1["ChunkBodyV1"], v1["IndexBodyV1"]
    index_v1 = fmt.INDEX_BODY_V1.parse(pieces["IndexBodyV1"][0])
    pieces["IndexEntryV1"] = [fmt.INDEX_ENTRY_V1.build(e) for e in index_v1.entries]
    audio = _golden_pieces(GOLDEN_AUDIO)
    pieces["AudioPacketsBody"], pieces["AudioIndexBody"] = audio["AudioPacketsBody"], audio["AudioIndexBody"]
    pieces["AudioPacket"] = [fmt.AUDIO_PACKET.build(p) for body in audio["AudioPacketsBody"]
                             for p in fmt.AUDIO_PACKETS_BODY.parse(body).packets]
    pieces["AudioIndexEntry"] = [fmt.AUDIO_INDEX_ENTRY.build(e)
                                 for e in fmt.AUDIO_INDEX_BODY.parse(audio["AudioIndexBody"][0]).entries]
    header_audio = fmt.HEADER_BODY.parse(audio["HeaderBody"][0])
    pieces["AudioStream"] = [bytes(e.value) for e in header_audio.extensions if e.tag == fmt.EXT_AUDIO_STREAM]
    tiled_header = dataclasses.replace(HEADER, tiles=TileGrid(10, 6))  # no golden file has tiles: write one
    tiled = write(packets(3, tiled_header), tiled_header)
    pieces["HeaderBodyV3"] = [tiled[16 : 16 + fmt.PREAMBLE.parse(tiled[:16]).header_length]]
    pieces["TileGrid"] = [fmt.TILE_GRID.build(fmt.HEADER_BODY_V3.parse(pieces["HeaderBodyV3"][0]).tiles)]
    overlapping = dataclasses.replace(HEADER, tiles=TileGrid(10, 6, 2))  # 4.0: the tiles overlap
    over = write(packets(3, overlapping), overlapping)
    pieces["HeaderBodyV4"] = [over[16 : 16 + fmt.PREAMBLE.parse(over[:16]).header_length]]
    pieces["TileGridV4"] = [fmt.TILE_GRID_V4.build(fmt.HEADER_BODY_V4.parse(pieces["HeaderBodyV4"][0]).tiles)]
    assert set(pieces) == set(fmt.STRUCTS)
    assert all(pieces.values())
    for name, samples in pieces.items():
        for data in samples:
            struct = fmt.STRUCTS[name]
            assert struct.build(struct.parse(data)) == data, name


def _strip(obj: object) -> object:
    """A construct Container as plain data, without construct's bookkeeping keys."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


STRUCT_OBJECTS = {
    "Preamble": {"major": 1, "minor": 7, "header_length": 1234},
    "FileHeader": {"major": 1, "minor": 0, "body": b"body bytes"},
    "StreamInfo": {
        "width": 1920,
        "height": 1080,
        "frame_count": 250,
        "frame_rate_num": 25,
        "frame_rate_den": 1,
        "time_base_num": 1,
        "time_base_den": 90000,
        "sar_num": 1,
        "sar_den": 1,
        "duration": 900000,
        "color_range": 1,
        "color_space": 1,
        "color_primaries": 1,
        "color_trc": 1,
        "pix_fmt": "yuv420p10le",
    },
    "Representation": {
        "network": 1,
        "encoding": 2,
        "coords": 1,
        "prepend_coord": 0,
        "hidden": 128,
        "layers": 4,
        "lx": 64,
        "ly": 64,
        "lt": 32,
        "chunk_frames": 15,
        "w0": 30.0,
        "sigma": 0.003,
    },
    "CoderParams": {
        "kind": 1,
        "qp_density": 2,
        "dependent_quantization": 1,
        "cabac_unary_length_minus1": 10,
        "nncodec_version": "2.1.3",
    },
    "Metadata": {"encoder": "invrcodec 0.1.0", "settings": "preset=medium ünïcode=✓"},
    "Extension": {"tag": b"ABCD", "value": b"\x00" * 5},
    "Record": {"tag": b"CHNK", "body": b"\x01\x02\x03"},
    "CodedTensor": {"qp": -44, "data": b"\xff" * 9},
    "IndexEntry": {
        "first_frame": 15,
        "frame_count": 15,
        "offset": 1 << 40,
        "size": 999,
        "crc32": 0xDEADBEEF,
        "train_psnr": 31.5,
        "prediction": 1,
    },
    "TrailerBody": {"index_offset": 123456},
    "TileGrid": {"tile_width": 128, "tile_height": 65535},
    "AudioStream": {
        "codec": "aac",
        "sample_rate": 48000,
        "channels": 6,
        "channel_layout": "5.1",
        "time_base_num": 1,
        "time_base_den": 48000,
        "frame_size": 1024,
        "bit_rate": 384000,
        "extradata": b"\x11\xb0",
        "extensions": [],
    },
    "AudioPacket": {"pts": -1105, "dts": -1105, "duration": 1152, "flags": 3, "data": b"\xff\xfb" * 9},
    "AudioPacketsBody": {"stream": 2, "packets": [], "extensions": []},
    "AudioIndexEntry": {
        "offset": 1 << 40,
        "size": 1234,
        "crc32": 0xCAFEF00D,
        "stream": 0,
        "packet_count": 40,
        "first_dts": -(1 << 62),
        "last_dts": 1 << 62,
        "start": -1,
        "end": 2**63 - 1,
    },
    "AudioIndexBody": {"entries": []},
}


@pytest.mark.parametrize("name", sorted(STRUCT_OBJECTS))
def test_parse_build_object_identity(name: str) -> None:
    struct = fmt.STRUCTS[name]
    obj = STRUCT_OBJECTS[name]
    parsed = _strip(struct.parse(struct.build(obj)))
    assert {k: v for k, v in parsed.items() if k in obj} == obj  # type: ignore[union-attr]


def test_parse_build_nested_objects() -> None:
    body = {
        "stream": STRUCT_OBJECTS["StreamInfo"],
        "representation": STRUCT_OBJECTS["Representation"],
        "coder": STRUCT_OBJECTS["CoderParams"],
        "metadata": STRUCT_OBJECTS["Metadata"],
        "extensions": [STRUCT_OBJECTS["Extension"], {"tag": b"WXYZ", "value": b""}],
    }
    parsed = _strip(fmt.HEADER_BODY.parse(fmt.HEADER_BODY.build(body)))
    parsed["extensions"] = [{"tag": e["tag"], "value": e["value"]} for e in parsed["extensions"]]  # type: ignore[index]
    assert parsed == body
    chunk = {
        "index": 3,
        "first_frame": 45,
        "frame_count": 15,
        "train_psnr": float("inf"),
        "prediction": 1,
        "tensors": [{"qp": -40, "data": b"ab"}, {"qp": 2, "data": b""}],
        "extensions": [],
    }
    parsed = _strip(fmt.CHUNK_BODY.parse(fmt.CHUNK_BODY.build(chunk)))
    parsed["tensors"] = [{"qp": t["qp"], "data": t["data"]} for t in parsed["tensors"]]  # type: ignore[index]
    assert parsed == {**chunk, "tensor_count": 2}
    index = {"entries": [STRUCT_OBJECTS["IndexEntry"]] * 3}
    parsed = _strip(fmt.INDEX_BODY.parse(fmt.INDEX_BODY.build(index)))
    assert parsed == {"entry_count": 3, "entries": index["entries"]}


def test_record_and_header_checksums_are_declared() -> None:
    record = fmt.RECORD.build({"tag": b"CHNK", "body": b"xyz"})
    assert record[-4:] == fmt.crc32(record[:-4]).to_bytes(4, "little")
    broken = record[:-1] + bytes([record[-1] ^ 1])
    with pytest.raises(c.ChecksumError):
        fmt.RECORD.parse(broken)
    header = fmt.build_header(HEADER)
    assert header[-4:] == fmt.crc32(header[:-4]).to_bytes(4, "little")


# --- views: round trips through bytes -------------------------------------------------------------------

fractions = st.builds(Fraction, st.integers(1, 120000), st.integers(1, 90000))
representations = st.builds(
    Representation,
    network=st.sampled_from(list(NetworkKind)),
    hidden=st.integers(1, 64),
    layers=st.integers(1, 6),
    w0=st.floats(allow_nan=False, allow_infinity=False),
    encoding=st.sampled_from([EncodingKind.SINUSOIDAL, EncodingKind.GAUSSIAN]),
    enc_dims=st.tuples(st.integers(1, 64), st.integers(0, 64), st.integers(0, 64)),
    sigma=st.floats(min_value=1e-6, max_value=1e6),
    prepend_coord=st.booleans(),
    coords=st.just(CoordConvention.PAPER_EQ4),
    chunk_frames=st.integers(1, 65535),
)
headers = st.builds(
    Header,
    stream=st.builds(
        StreamInfo,
        width=st.integers(1, 65535),
        height=st.integers(1, 65535),
        frame_count=st.integers(0, 2**32 - 1),
        frame_rate=fractions,
        time_base=fractions,
        sample_aspect_ratio=st.builds(Fraction, st.integers(0, 1000), st.integers(1, 1000)),
        pix_fmt=st.text(st.characters(max_codepoint=127), max_size=30),
        color_range=st.integers(0, 255),
        color_space=st.integers(0, 255),
        color_primaries=st.integers(0, 255),
        color_trc=st.integers(0, 255),
    ),
    representation=representations,
    coder=st.builds(
        CoderParams,
        kind=st.sampled_from(list(CoderKind)),
        qp_density=st.integers(0, 255),
        dependent_quantization=st.booleans(),
        cabac_unary_length_minus1=st.integers(0, 255),
        nncodec_version=st.text(st.characters(max_codepoint=127), max_size=20),
    ),
    metadata=st.builds(Metadata, encoder=st.text(max_size=40), settings=st.text(max_size=200)),
)


@settings(max_examples=150, deadline=None)
@given(headers)
def test_header_view_round_trip(header: Header) -> None:
    data = fmt.build_header(header)
    body = fmt.verify_header(data)
    parsed, extensions = fmt.parse_header_body(body)
    assert parsed == header and extensions == ()
    assert fmt.build_header(parsed) == data


@settings(max_examples=100, deadline=None)
@given(
    index=st.integers(0, 2**32 - 1),
    first=st.integers(0, 2**32 - 1),
    count=st.integers(1, 2**32 - 1),
    psnr=st.floats(allow_nan=False),
    tensors=st.lists(
        st.builds(CodedTensor, st.integers(-(2**31), 2**31 - 1), st.binary(max_size=40)), max_size=12
    ),
)
def test_packet_view_round_trip(
    index: int, first: int, count: int, psnr: float, tensors: list[CodedTensor]
) -> None:
    p = Packet(index, first, count, tuple(tensors), psnr)
    body = fmt.build_chunk_body(p)
    assert fmt.parse_chunk_body(body, "chunk", 0) == p
    assert fmt.build_chunk_body(fmt.parse_chunk_body(body, "chunk", 0)) == body


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            IndexEntry,
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**64 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.floats(allow_nan=False),
        ),
        max_size=20,
    )
)
def test_index_view_round_trip(entries: list[IndexEntry]) -> None:
    body = fmt.build_index_body(entries)
    assert fmt.parse_index_body(body, 0) == entries
    assert fmt.build_index_body(fmt.parse_index_body(body, 0)) == body


def test_header_values_outside_the_spec_are_refused() -> None:
    bad = [
        dataclasses.replace(HEADER, stream=dataclasses.replace(HEADER.stream, width=0)),
        dataclasses.replace(HEADER, stream=dataclasses.replace(HEADER.stream, height=70000)),
        dataclasses.replace(HEADER, stream=dataclasses.replace(HEADER.stream, frame_rate=Fraction(0))),
        dataclasses.replace(HEADER, stream=dataclasses.replace(HEADER.stream, pix_fmt="yüv")),
        dataclasses.replace(HEADER, representation=dataclasses.replace(REP, hidden=0)),
        dataclasses.replace(HEADER, representation=dataclasses.replace(REP, sigma=float("nan"))),
        dataclasses.replace(HEADER, representation=dataclasses.replace(REP, hidden=16384, layers=64)),
        dataclasses.replace(HEADER, metadata=Metadata(settings="x" * 70000)),
    ]
    for header in bad:
        with pytest.raises(MalformedError):
            fmt.build_header(header)


def test_unknown_ids_and_bad_flags_are_malformed() -> None:
    body = bytearray(fmt.build_header(HEADER)[16:-4])
    rep_at = 48 + 1 + len(HEADER.stream.pix_fmt)
    for offset, value, word in (
        (rep_at, 9, "network"),
        (rep_at + 1, 7, "encoding"),
        (rep_at + 2, 0, "coords"),
        (rep_at + 3, 2, "prepend_coord"),
        (rep_at + 36, 0, "coder"),
        (rep_at + 38, 5, "dependent_quantization"),
    ):
        b = bytearray(body)
        b[offset] = value
        with pytest.raises(MalformedError, match=word):
            fmt.parse_header_body(bytes(b))
    with pytest.raises(MalformedError):  # a byte left over after the last extension
        fmt.parse_header_body(bytes(body) + b"\x00")


# --- muxer and demuxer ----------------------------------------------------------------------------------


def test_round_trip_seekable_patches_frame_count() -> None:
    pkts = packets(11)
    data = write(pkts)
    with invrcodec.open(io.BytesIO(data)) as f:
        assert f.version == (fmt.MAJOR, 0)
        assert f.size == len(data)
        assert f.header == dataclasses.replace(
            HEADER, stream=dataclasses.replace(HEADER.stream, frame_count=11)
        )
        assert list(f.demux()) == pkts
        assert [(e.first_frame, e.frame_count) for e in f.index] == [(0, 3), (3, 3), (6, 3), (9, 2)]
        assert [e.train_psnr for e in f.index] == [p.train_psnr for p in pkts]
    # the header on disk carries the patched count, and its CRC is right
    header, _ = fmt.parse_header_body(fmt.verify_header(data[: len(fmt.build_header(HEADER))]))
    assert header.stream.frame_count == 11
    assert int.from_bytes(data[fmt.FRAME_COUNT_OFFSET : fmt.FRAME_COUNT_OFFSET + 4], "little") == 11


def test_pipe_writer_keeps_unknown_count_and_readers_report_the_truth() -> None:
    pkts = packets(7)
    pipe = PipeWriter()
    with invrcodec.open(pipe, "w", header=HEADER) as out:
        for p in pkts:
            out.mux(p)
    data = pipe.getvalue()
    assert data[fmt.FRAME_COUNT_OFFSET : fmt.FRAME_COUNT_OFFSET + 4] == b"\0\0\0\0"
    seekable = write(pkts)
    header_end = len(fmt.build_header(HEADER))
    # only the header differs
    assert len(seekable) == len(data) and seekable[header_end:] == data[header_end:]
    with invrcodec.open(io.BytesIO(data)) as f:
        assert f.header.stream.frame_count == 7
        assert list(f.demux()) == pkts
    with invrcodec.open(io.BufferedReader(PipeReader(data))) as f:
        assert not f.seekable
        assert f.header.stream.frame_count == 0  # a pipe reader knows only the header's value at first
        assert f.size is None
        with pytest.raises(InvrError):
            f.index  # noqa: B018
        assert list(f.demux()) == pkts
        assert f.header.stream.frame_count == 7
        assert f.size == len(data)
        assert len(f.index) == 3
        with pytest.raises(InvrError):
            list(f.demux())  # a pipe is read once


def test_pipe_read_of_a_patched_file_and_raw_unbuffered_reads() -> None:
    pkts = packets(9)
    data = write(pkts)
    raw = PipeReader(data, piece=1)  # read() may return fewer bytes than asked
    with invrcodec.open(raw) as f:  # type: ignore[arg-type]
        assert f.header.stream.frame_count == 9
        assert list(f.demux()) == pkts


def test_random_access_reads_only_header_index_and_needed_chunks() -> None:
    pkts = packets(30)
    data = write(pkts)
    f = CountingFile(data)
    with invrcodec.open(f) as container:
        index = container.index
        opened = list(f.ranges)
        f.ranges.clear()
        got = list(container.demux(13, 4))  # frames 13..16: chunks 4 (12-14) and 5 (15-17)
    assert [p.index for p in got] == [4, 5]
    read = sorted(f.ranges)
    assert read == [
        (index[4].offset, index[4].offset + index[4].size),
        (index[5].offset, index[5].offset + index[5].size),
    ]
    header_end = index[0].offset
    index_start = index[-1].offset + index[-1].size
    for start, end in opened:
        assert end <= header_end or start >= index_start


@pytest.mark.parametrize("pipe", [False, True])
def test_demux_ranges(pipe: bool) -> None:
    pkts = packets(10)
    data = write(pkts)

    def ranged(first: int, count: int | None) -> list[int]:
        src = io.BufferedReader(PipeReader(data)) if pipe else io.BytesIO(data)
        with invrcodec.open(src) as f:
            return [p.index for p in f.demux(first, count)]

    assert ranged(0, None) == [0, 1, 2, 3]
    assert ranged(0, 1) == [0]
    assert ranged(2, 2) == [0, 1]
    assert ranged(3, 3) == [1]
    assert ranged(9, None) == [3]
    assert ranged(10, None) == []
    assert ranged(4, 0) == []
    with pytest.raises(ValueError):
        ranged(-1, None)


def test_file_object_not_at_offset_zero() -> None:
    pkts = packets(5)
    buf = io.BytesIO()
    buf.write(b"prefix!")
    with invrcodec.open(buf, "w", header=HEADER) as out:
        out.mux(pkts)
    data = buf.getvalue()
    assert data[:7] == b"prefix!"
    src = io.BytesIO(data)
    src.seek(7)
    with invrcodec.open(src) as f:
        assert f.size == len(data) - 7
        assert f.header.stream.frame_count == 5
        assert list(f.demux()) == pkts
        assert f.index[0].offset == len(fmt.build_header(HEADER))


def test_paths(tmp_path: Path) -> None:
    pkts = packets(4)
    path = tmp_path / "a.invr"
    with invrcodec.open(path, "w", header=HEADER) as out:
        out.mux(pkts)
    with invrcodec.open(str(path)) as f:
        assert f.size == path.stat().st_size
        assert list(f.demux()) == pkts


def test_empty_stream() -> None:
    data = write([])
    with invrcodec.open(io.BytesIO(data)) as f:
        assert f.index == [] and list(f.demux()) == [] and f.header.stream.frame_count == 0
    with invrcodec.open(io.BufferedReader(PipeReader(data))) as f:
        assert list(f.demux()) == [] and f.index == []


def test_exception_in_with_block_leaves_an_unfinished_file() -> None:
    buf = io.BytesIO()
    with pytest.raises(RuntimeError), invrcodec.open(buf, "w", header=HEADER) as out:
        out.mux(packet(0, 0, 3))
        raise RuntimeError("encoder died")
    with pytest.raises(TruncatedError, match="truncated or unfinished"):
        invrcodec.open(io.BytesIO(buf.getvalue()))


def test_raw_coders() -> None:
    for kind in (CoderKind.RAW_FLOAT32, CoderKind.RAW_FLOAT16):
        header = dataclasses.replace(HEADER, coder=CoderParams(kind, 0, False, 0, ""))
        pkts = packets(4, header)
        data = write(pkts, header)
        with invrcodec.open(io.BytesIO(data)) as f:
            assert list(f.demux()) == pkts
        short = dataclasses.replace(pkts[0], tensors=(CodedTensor(0, b"\0" * 3),) + pkts[0].tensors[1:])
        with pytest.raises(MalformedError, match="bytes, expected"):
            write([short], header)


def test_raw_length_checked_by_the_demuxer() -> None:
    """A (CRC-valid) raw chunk with a wrong tensor length is refused when read."""
    header = dataclasses.replace(HEADER, coder=CoderParams(CoderKind.RAW_FLOAT16, 0, False, 0, ""))
    good = packets(3, header)[0]
    bad = dataclasses.replace(good, tensors=(CodedTensor(0, b"\0" * 2),) + good.tensors[1:])
    data = _forge(header, [fmt.build_record(fmt.TAG_CHUNK, fmt.build_chunk_body(bad))], [bad])
    with invrcodec.open(io.BytesIO(data)) as f, pytest.raises(MalformedError, match="expected"):
        list(f.demux())


def _forge(
    header: Header,
    records: list[bytes],
    pkts: list[Packet],
    *,
    minor: int = 0,
    extensions: tuple[fmt.Extension, ...] = (),
) -> bytes:
    """A file made of the given records, with a consistent index of the CHNK records among them."""
    head = fmt.build_header(header, minor=minor, extensions=extensions)
    pos = len(head)
    entries, out, k = [], [head], 0
    for rec in records:
        if rec[:4] == fmt.TAG_CHUNK:
            p = pkts[k]
            k += 1
            entries.append(
                IndexEntry(
                    p.first_frame,
                    p.frame_count,
                    pos,
                    len(rec),
                    int.from_bytes(rec[-4:], "little"),
                    p.train_psnr,
                )
            )
        out.append(rec)
        pos += len(rec)
    out.append(fmt.build_record(fmt.TAG_INDEX, fmt.build_index_body(entries)))
    out.append(fmt.build_record(fmt.TAG_TRAILER, fmt.build_trailer_body(pos)))
    return b"".join(out)


def test_muxer_refuses_packets_out_of_order_or_of_the_wrong_shape() -> None:
    cases = [
        [packet(1, 0, 3)],  # wrong number
        [packet(0, 1, 3)],  # wrong first frame
        [packet(0, 0, 4)],  # more frames than chunk_frames
        [packet(0, 0, 0)],  # no frames
        [dataclasses.replace(packet(0, 0, 3), tensors=packet(0, 0, 3).tensors[:-1])],  # a tensor short
        [dataclasses.replace(packet(0, 0, 3), tensors=(CodedTensor(2**31, b""),) * 6)],  # qp beyond i32
        [packet(0, 0, 2), packet(1, 3, 3)],  # a gap
    ]
    for pkts in cases:
        with pytest.raises(MalformedError):
            write(pkts)
    muxer = Muxer(io.BytesIO(), HEADER)
    muxer.close()
    with pytest.raises(InvrError):
        muxer.mux(packet(0, 0, 3))


def test_open_arguments() -> None:
    with pytest.raises(ValueError):
        invrcodec.open(io.BytesIO(), "w")
    with pytest.raises(ValueError):
        invrcodec.open(io.BytesIO(), "r", header=HEADER)
    with pytest.raises(ValueError):
        invrcodec.open(io.BytesIO(), "a")  # type: ignore[call-overload]


# --- versions -------------------------------------------------------------------------------------------


def test_newer_minor_with_unknown_extensions_and_records_is_read() -> None:
    pkts = packets(6)
    ext = (fmt.Extension(b"NEWX", b"future header facts"), fmt.Extension(b"MORE", b""))
    records = []
    for p in pkts:
        body = fmt.build_chunk_body(p)
        body += fmt.EXTENSION.build({"tag": b"CEXT", "value": b"per-chunk future"})
        records.append(fmt.build_record(b"FUTR", b"an unknown record between chunks"))
        records.append(fmt.build_record(fmt.TAG_CHUNK, body))
    data = _forge(HEADER, records, pkts, minor=3, extensions=ext)
    for src in (io.BytesIO(data), io.BufferedReader(PipeReader(data))):
        with invrcodec.open(src) as f:
            assert f.version == (fmt.MAJOR, 3)
            assert list(f.demux()) == pkts
            assert f.header.stream.frame_count == 6
    demuxer = Demuxer(io.BytesIO(data))
    assert demuxer.extensions == ext


def test_newer_minor_through_the_muxer() -> None:
    buf = io.BytesIO()
    muxer = Muxer(buf, HEADER, minor=9, extensions=(fmt.Extension(b"ABCD", b"1"),))
    muxer.mux(packet(0, 0, 3))
    muxer.close()
    with invrcodec.open(io.BytesIO(buf.getvalue())) as f:
        assert f.version == (fmt.MAJOR, 9) and f.header.stream.frame_count == 3


@pytest.mark.parametrize("major", [0, 5, 65535])  # 3 is read since tiles, 4 since their overlap
def test_unknown_major_is_refused(major: int) -> None:
    data = bytearray(write(packets(3)))
    data[8:10] = major.to_bytes(2, "little")
    for src in (io.BytesIO(bytes(data)), io.BufferedReader(PipeReader(bytes(data)))):
        with pytest.raises(UnsupportedVersionError, match=f"version {major}.0 is not supported"):
            invrcodec.open(src)


def test_not_an_invr_file() -> None:
    for data in (b"", b"RIFF\0\0\0\0WAVE", b"\x1aE\xdf\xa3" + bytes(100), b"INVR"):
        with pytest.raises(InvrFormatError):
            invrcodec.open(io.BytesIO(data))
    with pytest.raises(MalformedError, match="not an INVR file"):
        invrcodec.open(io.BytesIO(b"GIF89a" + bytes(50)))


def test_index_that_disagrees_with_the_chunks() -> None:
    pkts = packets(6)
    data = write(pkts)
    with invrcodec.open(io.BytesIO(data)) as f:
        index = f.index
    header = data[: index[0].offset]
    chunks = data[index[0].offset : index[-1].offset + index[-1].size]
    bad_entries = [index[0], dataclasses.replace(index[1], crc32=index[1].crc32 ^ 1)]

    def with_index(entries: list[IndexEntry]) -> bytes:
        pos = len(header) + len(chunks)
        return (
            header
            + chunks
            + fmt.build_record(fmt.TAG_INDEX, fmt.build_index_body(entries))
            + fmt.build_record(fmt.TAG_TRAILER, fmt.build_trailer_body(pos))
        )

    with (
        invrcodec.open(io.BytesIO(with_index(bad_entries))) as f,
        pytest.raises(ChecksumError, match="chunk 1: checksum does not match the index"),
    ):
        list(f.demux())
    with (
        pytest.raises(MalformedError, match="does not match the chunks"),
        invrcodec.open(io.BufferedReader(PipeReader(with_index(bad_entries)))) as f,
    ):
        list(f.demux())
    swapped = [index[1], index[0]]
    with pytest.raises(MalformedError, match="first_frame"):
        invrcodec.open(io.BytesIO(with_index(swapped)))
    overlapping = [index[0], dataclasses.replace(index[1], offset=index[0].offset)]
    with pytest.raises(MalformedError, match="out of place"):
        invrcodec.open(io.BytesIO(with_index(overlapping)))


# --- the golden file ------------------------------------------------------------------------------------

GOLDEN_HEADER = Header(
    stream=dataclasses.replace(sample_script("make_golden").STREAM, frame_count=4),
    representation=Representation(
        network=NetworkKind.SIREN,
        hidden=16,
        layers=2,
        w0=30.0,
        encoding=EncodingKind.SINUSOIDAL,
        enc_dims=(4, 4, 2),
        sigma=1.4,
        prepend_coord=True,
        coords=CoordConvention.PAPER_EQ4,
        chunk_frames=2,
    ),
    coder=CoderParams(
        kind=CoderKind.DEEPCABAC,
        qp_density=2,
        dependent_quantization=False,
        cabac_unary_length_minus1=10,
        nncodec_version="2.1.3",
    ),
)


@pytest.mark.parametrize(
    ("path", "version", "size", "dq", "predictions"),
    [
        (GOLDEN_V1, (1, 0), 2271, False, [Prediction.KEY, Prediction.KEY]),
        (GOLDEN, (2, 0), 2045, True, [Prediction.KEY, Prediction.PREVIOUS]),
        (GOLDEN_AUDIO, (2, 1), 3435, True, [Prediction.KEY, Prediction.PREVIOUS]),
    ],
)
def test_golden_file_reads_to_its_exact_header(path: Path, version: tuple[int, int], size: int, dq: bool,
                                               predictions: list[Prediction]) -> None:
    data = path.read_bytes()
    expected = dataclasses.replace(GOLDEN_HEADER, coder=dataclasses.replace(GOLDEN_HEADER.coder,
                                                                            dependent_quantization=dq))
    for src in (io.BytesIO(data), io.BufferedReader(PipeReader(data, piece=64))):
        with invrcodec.open(src) as f:
            pkts = list(f.demux())
            assert f.version == version
            h = f.header
            assert dataclasses.replace(h, metadata=Metadata()) == expected
            assert h.metadata.encoder == "invrcodec 0.1.0"
            assert h.metadata.settings.startswith("preset=ultrafast network=siren hidden=16 layers=2")
            assert [(e.first_frame, e.frame_count) for e in f.index] == [(0, 2), (2, 2)]
            assert [e.prediction for e in f.index] == predictions
            assert f.size == len(data) == size
    assert [(p.index, p.first_frame, p.frame_count, len(p.tensors), p.prediction) for p in pkts] == [
        (0, 0, 2, 6, predictions[0]),
        (1, 2, 2, 6, predictions[1]),
    ]
    assert all(20 < p.train_psnr < 60 for p in pkts)


def test_golden_file_decodes() -> None:
    pytest.importorskip("torch")
    try:
        import invrcodec.codec.decoder
        from invrcodec.coding import deepcabac

        deepcabac._lib()
    except (ImportError, InvrError) as e:
        pytest.skip(f"the decoder is not usable here: {e}")
    for path in (GOLDEN, GOLDEN_V1, GOLDEN_AUDIO, GOLDEN_TILES):
        _decodes_whole_and_in_part(path)


def test_tiled_golden_file_reads_to_its_exact_header() -> None:
    data = GOLDEN_TILES.read_bytes()
    expected = dataclasses.replace(GOLDEN_HEADER, coder=dataclasses.replace(GOLDEN_HEADER.coder,
                                                                            dependent_quantization=True),
                                   tiles=TileGrid(8, 8))
    for src in (io.BytesIO(data), io.BufferedReader(PipeReader(data, piece=64))):
        with invrcodec.open(src) as f:
            pkts = list(f.demux())
            assert f.version == (3, 0) and f.size == len(data) == 6460
            assert dataclasses.replace(f.header, metadata=Metadata()) == expected
            assert f.header.metadata.settings.endswith(" tile=8x8")
            assert [e.prediction for e in f.index] == [Prediction.KEY, Prediction.PREVIOUS]
    assert [(p.index, p.first_frame, p.frame_count, len(p.tensors)) for p in pkts] == [(0, 0, 2, 24), (1, 2, 2, 24)]
    assert all(20 < p.train_psnr < 60 for p in pkts)


def _decodes_whole_and_in_part(path: Path) -> None:
    with invrcodec.open(path) as f:
        frames = list(f.decode())
        assert len(frames) == 4
        assert all(fr.shape == (16, 16, 3) and fr.dtype.name == "uint8" for fr in frames)
        part = list(f.decode(1, 2))
    assert len(part) == 2
    assert (part[0] == frames[1]).all() and (part[1] == frames[2]).all()


# --- overhead -------------------------------------------------------------------------------------------


def test_overhead_of_ten_seconds_at_25_fps() -> None:
    """spec "Overhead": 250 frames in 15-frame chunks with the default representation."""
    settings_string = "s" * 237
    header = Header(
        StreamInfo(128, 128, 0, frame_rate=Fraction(25), time_base=Fraction(1, 25)),
        Representation(),
        CoderParams(nncodec_version="2.1.3"),
        Metadata("invrcodec 0.1.0", settings_string),
    )
    pkts = packets(250, header)
    data = write(pkts, header)
    payload = sum(p.size for p in pkts)
    with invrcodec.open(io.BytesIO(data)) as f:
        index = f.index
    header_bytes = index[0].offset
    framing = sum(e.size for e in index) - payload
    tail = len(data) - (index[-1].offset + index[-1].size)
    assert len(index) == 17
    assert header_bytes == 114 + len("yuv420p") + len("2.1.3") + len("invrcodec 0.1.0") + 237 == 378
    assert framing == 17 * (37 + 8 * 10) == 1989
    assert fmt.chunk_overhead(10) == 37 + 8 * 10 + 33  # framing and index entry: what --bitrate accounts for
    assert tail == 36 + 33 * 17 == 597
    assert header_bytes + framing + tail + payload == len(data)


def test_no_os_level_surprises(tmp_path: Path) -> None:
    """open() on a path closes what it opened, also when the header is bad."""
    path = tmp_path / "bad.invr"
    path.write_bytes(b"not invr at all")
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(20):
        with pytest.raises(InvrFormatError):
            invrcodec.open(path)
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after <= before + 1
