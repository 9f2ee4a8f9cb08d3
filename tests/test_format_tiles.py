"""Tiles in the container (format 3.0, spec "Tiles"): the TileGrid of HeaderBodyV3 and every tile's tensors in
each chunk, through the muxer and the demuxer on files and pipes; version 3.0 with and without audio, a file
without tiles still 2.x byte for byte; the field rules of the grid (the overlap's of 4.0 included), refused
with one line; crafted tiled files (every CRC recomputed) that read cleanly. The overlap of 4.0 files:
tests/test_format_overlap.py."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import random
import re
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from test_format import HEADER, REP, PipeReader, packet, packets, write

import invrcodec
from invrcodec.errors import InvrFormatError, MalformedError
from invrcodec.format import rules
from invrcodec.format import structs as fmt
from invrcodec.format.demuxer import Demuxer
from invrcodec.format.muxer import Muxer
from invrcodec.types import (
    AudioPacket,
    AudioStreamInfo,
    CodedTensor,
    CoderKind,
    CoderParams,
    Header,
    IndexEntry,
    StreamInfo,
    TileGrid,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "samples" / "tiny.invr"
GOLDEN_AUDIO = ROOT / "samples" / "tiny-audio.invr"

if "invr_fuzz_tool" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("invr_fuzz_tool", ROOT / "tools" / "fuzz.py")
    assert _spec and _spec.loader
    sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_spec.name])
from evalkit import crafted  # noqa: E402  (tools/ is on sys.path once fuzz.py is loaded)

# 24x16 in 10x6 tiles: columns of 10, 10 and 4 pixels, rows of 6, 6 and 4: 9 tiles, the last ones narrower
TILED = dataclasses.replace(HEADER, tiles=TileGrid(10, 6))
RAW = dataclasses.replace(TILED, coder=CoderParams(CoderKind.RAW_FLOAT16, 0, False, 0, ""))
AAC = AudioStreamInfo("aac", 48000, 2, "stereo", Fraction(1, 48000), 1024, 128000, b"\x11\x90")
N = len(REP.tensor_shapes())  # 6


def sources(data: bytes) -> list[Any]:
    return [io.BytesIO(data), io.BufferedReader(PipeReader(data, piece=37))]


def empty_file(header: Header) -> bytes:
    """A file of ``header`` and no chunk, written without the writer's checks (a crafted header)."""
    head = fmt.build_header(header)
    index = fmt.build_record(fmt.TAG_INDEX, fmt.build_index_body([]))
    return head + index + fmt.build_record(fmt.TAG_TRAILER, fmt.build_trailer_body(len(head)))


# --- the grid and the tensors of a chunk ---------------------------------------------------------------


def test_the_grid_counts_the_tensors_of_a_chunk() -> None:
    assert fmt.tile_count(HEADER) == 1 and fmt.tensor_count(HEADER) == N
    assert fmt.tile_count(TILED) == 9 and fmt.tensor_count(TILED) == 9 * N
    assert [(t.x, t.y, t.width, t.height) for t in TILED.tile_list()[::4]] == [
        (0, 0, 10, 6), (10, 6, 10, 6), (20, 12, 4, 4)]
    assert fmt.chunk_overhead(fmt.tensor_count(TILED)) == 37 + 8 * 9 * N + 33
    assert fmt.tensor_label(HEADER, 1) == "tensor layers.0.bias"
    assert fmt.tensor_label(TILED, 2 * N + 1) == "tile 2: tensor layers.0.bias"


def test_tile_tensors_are_tile_by_tile_in_raster_order() -> None:
    p = packet(0, 0, 3, TILED)
    tiles = fmt.tile_tensors(p, TILED)
    assert len(tiles) == 9 and all(len(t) == N for t in tiles)
    assert sum(tiles, ()) == p.tensors and tiles[1][0] == p.tensors[N]
    assert fmt.tile_tensors(packet(0, 0, 3), HEADER) == (packet(0, 0, 3).tensors,)


# --- round trips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [TILED, RAW], ids=["deepcabac", "raw"])
def test_tiled_round_trip_on_files_and_pipes(header: Header) -> None:
    pkts = packets(10, header)
    data = write(pkts, header)
    assert fmt.parse_preamble(data[:16]).major == 3
    for src in sources(data):
        with invrcodec.open(src) as f:
            assert list(f.demux()) == pkts
            assert f.version == (3, 0)
            stream = dataclasses.replace(header.stream, frame_count=10)
            assert f.header == dataclasses.replace(header, stream=stream)
            assert f.header.tiles == TileGrid(10, 6)
    assert all(len(p.tensors) == 9 * N for p in pkts)


def test_tiled_header_round_trip() -> None:
    data = fmt.build_header(TILED)
    assert fmt.parse_preamble(data[:16]) == fmt.Preamble(3, 0, len(data) - 20)
    assert len(data) == len(fmt.build_header(HEADER)) + 8  # the grid: two u32
    parsed, extensions = fmt.parse_header_body(fmt.verify_header(data), major=3)
    assert (parsed, extensions) == (TILED, ())
    assert fmt.build_header(parsed) == data
    assert fmt.file_version(TILED) == fmt.file_version(TILED, audio=True) == (3, 0)
    assert (fmt.file_version(HEADER), fmt.file_version(HEADER, audio=True)) == ((2, 0), (2, 1))


def test_a_3_0_file_is_minor_0_with_or_without_audio() -> None:
    audio = [AudioPacket(0, k * 1024 - 1024, k * 1024 - 1024, 1024, bytes([k]) * 9) for k in range(12)]
    for header, with_audio, version in ((TILED, True, (3, 0)), (TILED, False, (3, 0)), (HEADER, True, (2, 1)),
                                        (HEADER, False, (2, 0))):
        buf = io.BytesIO()
        with invrcodec.open(buf, "w", header=header, audio=(AAC,) if with_audio else ()) as out:
            out.mux_audio(audio if with_audio else [])
            out.mux(packets(7, header))
        data = buf.getvalue()
        pre = fmt.parse_preamble(data[:16])
        assert (pre.major, pre.minor) == version
        for src in sources(data):
            with invrcodec.open(src) as f:
                items = list(f.demux(audio=True))
                assert f.version == version and f.header.tiles == header.tiles
                assert [p for p in items if isinstance(p, AudioPacket)] == (audio if with_audio else [])
                assert [p for p in items if not isinstance(p, AudioPacket)] == packets(7, header)


@pytest.mark.parametrize("path", [GOLDEN, GOLDEN_AUDIO], ids=["2.0", "2.1"])
def test_a_file_without_tiles_is_written_as_2_x_byte_for_byte(path: Path) -> None:
    """The golden files demuxed and muxed again: the same bytes, so a writer of 3.0 writes 2.x as 2.x did."""
    data = path.read_bytes()
    with invrcodec.open(io.BytesIO(data)) as f:
        header, audio = f.header, f.audio_streams
        items = list(f.demux(audio=True))
    assert header.tiles is None
    buf = io.BytesIO()
    muxer = Muxer(buf, header, audio=audio)
    for item in items:
        if isinstance(item, AudioPacket):
            muxer.mux_audio(item)
    for item in items:
        if not isinstance(item, AudioPacket):
            muxer.mux(item)
    muxer.close()
    assert buf.getvalue() == data


def test_a_grid_of_one_tile_is_read() -> None:
    """Lawful, though a writer of this version writes such a file as 2.x: 3.0 with one network a chunk."""
    header = dataclasses.replace(HEADER, tiles=TileGrid(24, 16))
    data = write(packets(4, header), header)
    with invrcodec.open(io.BytesIO(data)) as f:
        assert f.version == (3, 0) and [len(p.tensors) for p in f.demux()] == [N, N]


# --- 2.x cannot carry tiles -------------------------------------------------------------------------------


def _relabel(data: bytes, major: int) -> bytes:
    """``data`` with another major in its preamble and the header CRC recomputed (a crafted file)."""
    length = fmt.parse_preamble(data[:16]).header_length
    head = bytearray(data[: 16 + length])
    head[8:10] = major.to_bytes(2, "little")
    return bytes(head) + fmt.crc32(bytes(head)).to_bytes(4, "little") + data[16 + length + 4 :]


def test_a_2_x_structure_cannot_carry_tiles() -> None:
    assert "tiles" not in [sc.name for sc in fmt.HEADER_BODY.subcons]
    body = fmt.verify_header(fmt.build_header(TILED))
    with pytest.raises(MalformedError):  # the grid's bytes are no coder
        fmt.parse_header_body(body, major=2)
    assert fmt.parse_header_body(fmt.verify_header(fmt.build_header(HEADER)))[0].tiles is None


@pytest.mark.parametrize(("header", "major"), [(TILED, 2), (TILED, 1), (HEADER, 3)])
def test_a_file_relabelled_across_the_tiles_major_is_refused(header: Header, major: int) -> None:
    data = _relabel(write(packets(4, header), header), major)
    for src in sources(data):
        with pytest.raises(MalformedError) as e:
            with invrcodec.open(src) as f:
                list(f.demux())
        assert "\n" not in str(e.value)


def test_a_tiled_chunk_in_a_2_x_file_is_refused() -> None:
    """A 2.x reader's tensor_count rule: the tensors of 9 networks are not those of one."""
    p = packet(0, 0, 3, TILED)
    head = fmt.build_header(HEADER, minor=0)
    rec = fmt.build_record(fmt.TAG_CHUNK, fmt.build_chunk_body(p))
    index = fmt.build_index_body([IndexEntry(0, 3, len(head), len(rec), int.from_bytes(rec[-4:], "little"),
                                             p.train_psnr)])
    pos = len(head) + len(rec)
    data = head + rec + fmt.build_record(fmt.TAG_INDEX, index) + fmt.build_record(
        fmt.TAG_TRAILER, fmt.build_trailer_body(pos))
    for src in sources(data):
        with pytest.raises(MalformedError, match=f"chunk 0: {9 * N} tensors, the representation has {N}"):
            with invrcodec.open(src) as f:
                list(f.demux())


# --- chunks that do not fit the grid ----------------------------------------------------------------------


def test_the_muxer_counts_every_tile() -> None:
    with pytest.raises(MalformedError, match=f"packet 0: {N} tensors, 9 tiles of {N} need {9 * N}"):
        write([packet(0, 0, 3)], TILED)
    good = packet(0, 0, 3, RAW)
    short = list(good.tensors)
    short[3 * N] = CodedTensor(0, b"\0" * 4)
    with pytest.raises(MalformedError, match="packet 0: tile 3: tensor layers.0.weight: 4 bytes, expected"):
        write([dataclasses.replace(good, tensors=tuple(short))], RAW)


def test_the_demuxer_names_the_tile_of_a_bad_qp() -> None:
    m = crafted.tiled(GOLDEN.read_bytes(), 8, 8)
    m.chunks[1].tensors[3 * 6 + 2].qp = 2**31 - 1  # tile 3's layers.1.weight
    data = crafted.dump(m)
    for src in sources(data):
        with pytest.raises(MalformedError, match="chunk 1: tile 3: tensor layers.1.weight: qp 2147483647 not"):
            with invrcodec.open(src) as f:
                list(f.demux())


# --- field rules of the grid ------------------------------------------------------------------------------

WIDE = Header(StreamInfo(300, 200, 0), REP, HEADER.coder)  # 707 parameters a network

# (rule, tile grid, stream, what the one-line message says)
CASES: list[tuple[str, TileGrid, StreamInfo, str]] = [
    ("tile grid", TileGrid(0, 6), HEADER.stream, "header: tile_width 0 not in 1..24 (the width)"),
    ("tile grid", TileGrid(25, 6), HEADER.stream, "header: tile_width 25 not in 1..24 (the width)"),
    ("tile grid", TileGrid(2**32 - 1, 6), HEADER.stream,
     "header: tile_width 4294967295 not in 1..24 (the width)"),
    ("tile grid", TileGrid(10, 0), HEADER.stream, "header: tile_height 0 not in 1..16 (the height)"),
    ("tile grid", TileGrid(10, 17), HEADER.stream, "header: tile_height 17 not in 1..16 (the height)"),
    ("tile grid", TileGrid(1, 1), StreamInfo(300, 300, 0),
     "header: 90000 tiles of 1x1 in 300x300 (at most 65536)"),
    ("tile parameters", TileGrid(1, 1), StreamInfo(240, 200, 0),
     "header: 48000 tiles of 707 parameters are 33936000 per chunk (at most 33554432)"),
    # 4.0: columns of 10, 10 and 4 pixels, rows of 6, 6 and 4: an overlap of at most 2
    ("tile overlap", TileGrid(10, 6, 3), HEADER.stream,
     "header: overlap 3 of tiles 10x6 in 24x16: at most 2 (half the narrowest tile)"),
    ("tile overlap", TileGrid(10, 6, 2**32 - 1), HEADER.stream,
     "header: overlap 4294967295 of tiles 10x6 in 24x16: at most 2 (half the narrowest tile)"),
    ("tile overlap", TileGrid(128, 120, 40), StreamInfo(300, 200, 0),
     "header: overlap 40 of tiles 128x120 in 300x200: at most 22 (half the narrowest tile)"),
    ("tile overlap", TileGrid(128, 100, 23), StreamInfo(300, 100, 0),  # one row: only the columns count
     "header: overlap 23 of tiles 128x100 in 300x100: at most 22 (half the narrowest tile)"),
]


def test_every_grid_rule_has_a_case() -> None:
    assert {rule for rule, *_ in CASES} == {name for name in rules.RULES if name.startswith("tile")}


@pytest.mark.parametrize(("rule", "grid", "stream", "message"), CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                                          enumerate(CASES)])
def test_each_grid_rule_is_refused_by_reader_and_writer(rule: str, grid: TileGrid, stream: StreamInfo,
                                                        message: str) -> None:
    header = dataclasses.replace(HEADER, stream=stream, tiles=grid)
    data = empty_file(header)  # the crafted file: every CRC right
    for src in sources(data):
        with pytest.raises(MalformedError) as e:
            invrcodec.open(src)
        assert str(e.value) == message and e.value.offset == 16
    with pytest.raises(MalformedError, match=f"^{re.escape(message)}$"):
        Muxer(io.BytesIO(), header)
    with pytest.raises(MalformedError, match=f"^{re.escape(message)}$"):
        rules.RULES[rule](header, None)


def test_the_limits_of_the_grid_are_lawful() -> None:
    """The largest grid of the rules and a chunk of parameters up to max_parameters are read."""
    rep = dataclasses.replace(REP, hidden=1, layers=1, enc_dims=(0, 0, 0))  # 3 + 1 + 3 + 3 = 10 parameters
    most = Header(StreamInfo(256, 256, 0), rep, HEADER.coder, tiles=TileGrid(1, 1))
    assert fmt.tile_count(most) == fmt.LIMITS["max_tiles"] == 65536
    rules.check_header(most)
    fits = dataclasses.replace(WIDE, tiles=TileGrid(1, 1), stream=StreamInfo(47460, 1, 0))
    assert fmt.tile_count(fits) * REP.parameter_count <= fmt.LIMITS["max_parameters"]
    rules.check_header(fits)
    with invrcodec.open(io.BytesIO(empty_file(fits))) as f:
        assert f.header.tiles == TileGrid(1, 1)
    most = ((TileGrid(10, 6, 2), HEADER.stream), (TileGrid(128, 100, 22), StreamInfo(300, 100, 0)),
            (TileGrid(24, 16, 2**32 - 1), HEADER.stream))  # the most overlap of a grid; of one tile, any
    for grid, stream in most:
        header = dataclasses.replace(HEADER, stream=stream, tiles=grid)
        rules.check_header(header)
        with invrcodec.open(io.BytesIO(empty_file(header))) as f:
            assert f.version == (4, 0) and f.header.tiles == grid


def test_tools_refuse_a_bad_grid_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from invrcodec.cli import probe

    fuzz = sys.modules["invr_fuzz_tool"]
    for i, (_, grid, stream, message) in enumerate(CASES):
        path = tmp_path / f"bad{i}.invr"
        path.write_bytes(empty_file(dataclasses.replace(HEADER, stream=stream, tiles=grid)))
        code, err = fuzz._run_tool(lambda: probe.main.main([str(path)], standalone_mode=False))
        assert capfd.readouterr().out == ""
        assert (code, err.splitlines()) == (1, [f"invr-probe: error: {path}: {message}"])


# --- crafted tiled files ------------------------------------------------------------------------------------


def test_a_crafted_tiled_file_reads_and_writes_back() -> None:
    data = crafted.dump(crafted.tiled(GOLDEN.read_bytes(), 8, 12))  # 2 x 2 tiles of 8x12 and 8x4
    assert crafted.dump(crafted.load(data)) == data
    for src in sources(data):
        with invrcodec.open(src) as f:
            pkts = list(f.demux())
            assert f.version == (3, 0) and f.header.tiles == TileGrid(8, 12)
    with invrcodec.open(GOLDEN) as f:
        plain = list(f.demux())
    assert [p.tensors for p in pkts] == [p.tensors * 4 for p in plain]


def test_crafted_tiled_files_raise_only_format_errors() -> None:
    """The field fuzzer on a tiled file: its grid is one more field; whatever the values, the demuxer reads
    the file or refuses it with an InvrFormatError."""
    base = GOLDEN.read_bytes()
    leaves = [path for path, _ in crafted._leaves(fmt.HEADER_BODY_V3, crafted.tiled(base, 8, 8).header, ())]
    assert ("tiles", "tile_width") in leaves and ("tiles", "tile_height") in leaves
    outcomes: dict[str, int] = {}
    for seed in range(120):
        rng = random.Random(seed)
        m = crafted.tiled(base, rng.choice([8, 5, 16]), rng.choice([8, 3, 16]))
        if seed % 3 == 0:  # the grid itself (the fuzzer picks it among every field, rarely)
            field = rng.choice(["tile_width", "tile_height"])
            m.header.tiles[field] = crafted._int_value(rng, "<L", m.header.tiles[field])
            did = f"header.tiles.{field}={m.header.tiles[field]}"
        else:
            did = crafted._mutate_field(rng, m) if seed % 4 else crafted._mutate_structure(rng, m)
        try:
            data = crafted.dump(m)
        except Exception:  # a value the Structs cannot write
            continue
        for src in sources(data):
            try:
                with invrcodec.open(src) as f:
                    list(f.demux())
                key = "read"
            except InvrFormatError as e:
                assert "\n" not in str(e), did
                key = type(e).__name__
            outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes.get("MalformedError", 0) > 20 and outcomes.get("read", 0) > 20, outcomes


def test_demuxer_facts_of_a_tiled_file() -> None:
    data = write(packets(6, TILED), TILED)
    d = Demuxer(io.BytesIO(data))
    assert d.version == (3, 0) and d.header.tiles == TileGrid(10, 6) and d.extensions == ()
    framing = sum(e.size for e in d.index or []) - sum(p.size for p in packets(6, TILED))
    assert framing == 2 * (37 + 8 * 9 * N)  # spec "Overhead": 37 + 8 · tiles · (2 · layers + 2) a chunk
