"""Overlapping tiles in the container (format 4.0, spec "Tiles" and "Version rules"): the TileGridV4 of
HeaderBodyV4 through the muxer and the demuxer on files and pipes; a tiled file without overlap still 3.0
byte for byte, and a 3.x grid read with overlap 0; the "tile overlap" rule, refused with one line by the API
and the tools; crafted 4.0 files (every CRC recomputed) whose overlap the field fuzzer changes."""

from __future__ import annotations

import dataclasses
import io
import random
import re
import sys
from pathlib import Path

import pytest
from test_format import HEADER, _decodes_whole_and_in_part, packets, write
from test_format_tiles import AAC, GOLDEN, N, TILED, _relabel, crafted, empty_file, sources

import invrcodec
from invrcodec.errors import InvrError, InvrFormatError, MalformedError
from invrcodec.format import rules
from invrcodec.format import structs as fmt
from invrcodec.format.muxer import Muxer
from invrcodec.types import AudioPacket, Header, Prediction, TileGrid

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_TILES = ROOT / "samples" / "tiny-tiles.invr"  # 3.0: tiny.invr's clip in four tiles of 8x8
GOLDEN_OVERLAP = ROOT / "samples" / "tiny-overlap.invr"  # 4.0: the same tiles, overlapping by 2

# 24x16 in 10x6 tiles overlapping by 2: columns of 10, 10 and 4 pixels, rows of 6, 6 and 4, so 2 is the most
OVER = dataclasses.replace(HEADER, tiles=TileGrid(10, 6, 2))


# --- writing and reading ------------------------------------------------------------------------------------


def test_the_version_follows_the_overlap() -> None:
    assert fmt.file_version(OVER) == fmt.file_version(OVER, audio=True) == (fmt.MAJOR_OVERLAP, 0) == (4, 0)
    assert fmt.file_version(TILED) == fmt.file_version(TILED, audio=True) == (3, 0)
    assert (fmt.file_version(HEADER), fmt.file_version(HEADER, audio=True)) == ((2, 0), (2, 1))
    assert fmt.READABLE_MAJORS == (1, 2, 3, 4) and fmt.NEWEST_MINOR[4] == fmt.MINOR_OVERLAP == 0


def test_overlap_header_round_trip() -> None:
    data = fmt.build_header(OVER)
    assert fmt.parse_preamble(data[:16]) == fmt.Preamble(4, 0, len(data) - 20)
    assert len(data) == len(fmt.build_header(TILED)) + 4  # the overlap: one u32 more in the grid
    parsed, extensions = fmt.parse_header_body(fmt.verify_header(data), major=4)
    assert (parsed, extensions) == (OVER, ())
    assert fmt.build_header(parsed) == data
    grid = fmt.TILE_GRID_V4.build({"tile_width": 10, "tile_height": 6, "overlap": 2})
    assert grid == bytes.fromhex("0a000000 06000000 02000000") and grid in data


def test_a_3_x_grid_reads_with_overlap_0() -> None:
    data = fmt.build_header(TILED)
    assert fmt.parse_preamble(data[:16]).major == 3
    parsed, _ = fmt.parse_header_body(fmt.verify_header(data), major=3)
    assert parsed.tiles == TileGrid(10, 6, 0) and parsed == TILED


@pytest.mark.parametrize("with_audio", [False, True], ids=["video", "audio"])
def test_overlap_round_trip_on_files_and_pipes(with_audio: bool) -> None:
    audio = [AudioPacket(0, k * 1024 - 1024, k * 1024 - 1024, 1024, bytes([k]) * 9) for k in range(12)]
    buf = io.BytesIO()
    with invrcodec.open(buf, "w", header=OVER, audio=(AAC,) if with_audio else ()) as out:
        out.mux_audio(audio if with_audio else [])
        out.mux(packets(10, OVER))
    data = buf.getvalue()
    assert fmt.parse_preamble(data[:16]).major == 4
    for src in sources(data):
        with invrcodec.open(src) as f:
            items = list(f.demux(audio=True))
            assert f.version == (4, 0)
            stream = dataclasses.replace(OVER.stream, frame_count=10)
            assert f.header == dataclasses.replace(OVER, stream=stream)
            assert [p for p in items if isinstance(p, AudioPacket)] == (audio if with_audio else [])
            video = [p for p in items if not isinstance(p, AudioPacket)]
            assert video == packets(10, OVER) and all(len(p.tensors) == 9 * N for p in video)


def test_a_tiled_file_without_overlap_is_written_as_3_0_byte_for_byte() -> None:
    """The 3.0 golden file demuxed and muxed again: the same bytes; a writer of 4.0 writes 3.0 as 3.0 did."""
    data = GOLDEN_TILES.read_bytes()
    with invrcodec.open(io.BytesIO(data)) as f:
        header, pkts = f.header, list(f.demux())
    assert f.version == (3, 0) and header.tiles == TileGrid(8, 8, 0)
    buf = io.BytesIO()
    muxer = Muxer(buf, header)
    for p in pkts:
        muxer.mux(p)
    muxer.close()
    assert buf.getvalue() == data


def test_a_4_0_file_without_overlap_is_read() -> None:
    """Lawful, though a writer of this version writes such a file as 3.0: the grid of a 3.0 file."""
    data = crafted.dump(crafted.tiled(GOLDEN.read_bytes(), 8, 8, 0))
    assert fmt.parse_preamble(data[:16]).major == 4
    with invrcodec.open(GOLDEN_TILES) as f:
        tiled_3 = list(f.demux())
    for src in sources(data):
        with invrcodec.open(src) as f:
            assert f.version == (4, 0) and f.header.tiles == TileGrid(8, 8, 0)
            assert [len(p.tensors) for p in f.demux()] == [4 * 6, 4 * 6] == [len(p.tensors) for p in tiled_3]


@pytest.mark.parametrize(("header", "major"), [(OVER, 3), (OVER, 2), (TILED, 4), (HEADER, 4)])
def test_a_file_relabelled_across_the_overlap_major_is_refused(header: Header, major: int) -> None:
    """The grid's four more bytes are no coder, and a coder's bytes no overlap: one line, never a misread."""
    data = _relabel(write(packets(4, header), header), major)
    for src in sources(data):
        with pytest.raises(MalformedError) as e:
            with invrcodec.open(src) as f:
                list(f.demux())
        assert "\n" not in str(e.value)


def test_a_truncated_grid_names_the_overlap() -> None:
    """A header body that ends inside the overlap field: the one-line message names the field."""
    body = fmt.verify_header(fmt.build_header(OVER))
    at = body.index(fmt.TILE_GRID_V4.build({"tile_width": 10, "tile_height": 6, "overlap": 2})) + 8
    with pytest.raises(MalformedError, match=r"^header: malformed at byte 16: tiles\.overlap: [^\n]*$"):
        fmt.parse_header_body(body[: at + 2], major=4)


# --- the "tile overlap" rule --------------------------------------------------------------------------------


def test_overlap_is_judged_only_on_a_lawful_grid() -> None:
    """A grid that breaks the "tile grid" rule is refused for that, whatever its overlap."""
    for grid, message in ((TileGrid(25, 6, 99), "header: tile_width 25 not in 1..24 (the width)"),
                          (TileGrid(10, 0, 99), "header: tile_height 0 not in 1..16 (the height)")):
        header = dataclasses.replace(HEADER, tiles=grid)
        rules.RULES["tile overlap"](header, None)  # nothing to say
        with pytest.raises(MalformedError, match=f"^{re.escape(message)}$"):
            invrcodec.open(io.BytesIO(empty_file(header)))


def test_a_negative_overlap_is_refused_by_the_writer() -> None:
    header = dataclasses.replace(HEADER, tiles=TileGrid(10, 6, -1))
    with pytest.raises(MalformedError, match="^header: overlap -1 is negative$"):
        Muxer(io.BytesIO(), header)


def test_the_rule_is_overlap_fits() -> None:
    """The rule refuses exactly the grids that TileGrid.overlap_fits refuses, the last column and row
    included."""
    rng = random.Random(4)
    for _ in range(300):
        width, height = rng.randint(1, 90), rng.randint(1, 90)
        grid = TileGrid(rng.randint(1, width), rng.randint(1, height), rng.randint(0, 30))
        header = Header(dataclasses.replace(HEADER.stream, width=width, height=height), HEADER.representation,
                        HEADER.coder, tiles=grid)
        try:
            rules.check_tiles(header)
            refused = False
        except MalformedError as e:
            refused = True
            assert str(e).startswith(f"header: overlap {grid.overlap} of tiles") and "\n" not in str(e)
        assert refused == (not grid.overlap_fits(width, height))


def _overlapping(overlap: int) -> bytes:
    """tiny.invr as a 4.0 file of four 8x8 tiles overlapping by ``overlap`` (4 at most), every CRC right."""
    return crafted.dump(crafted.tiled(GOLDEN.read_bytes(), 8, 8, overlap))


def test_a_crafted_overlap_is_refused_by_the_api() -> None:
    message = "header: overlap 5 of tiles 8x8 in 16x16: at most 4 (half the narrowest tile)"
    for src in sources(_overlapping(5)):
        with pytest.raises(MalformedError) as e:
            invrcodec.open(src)
        assert (str(e.value), e.value.offset) == (message, 16)
    for src in sources(_overlapping(4)):
        with invrcodec.open(src) as f:
            assert f.header.tiles == TileGrid(8, 8, 4) and len(list(f.demux())) == 2


def test_tools_refuse_a_crafted_overlap_in_one_line(tmp_path: Path,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    from invrcodec.cli import common, dec, probe

    fuzz = sys.modules["invr_fuzz_tool"]
    path = tmp_path / "overlap.invr"
    path.write_bytes(_overlapping(2**31))
    message = "header: overlap 2147483648 of tiles 8x8 in 16x16: at most 4 (half the narrowest tile)"
    code, err = fuzz._run_tool(lambda: probe.main.main([str(path)], standalone_mode=False))
    assert capfd.readouterr().out == ""
    assert (code, err.splitlines()) == (1, [f"invr-probe: error: {path}: {message}"])
    argv = [str(path), str(tmp_path / "out.y4m")]
    code, err = fuzz._run_tool(lambda: common.run_main(dec.command, "invr-dec", argv))
    assert capfd.readouterr().out == ""
    assert (code, err.splitlines()) == (1, [f"invr-dec: error: {path}: {message}"])
    assert not (tmp_path / "out.y4m").exists()


# --- crafted 4.0 files --------------------------------------------------------------------------------------


def test_a_crafted_overlapping_file_reads_and_writes_back() -> None:
    data = _overlapping(2)
    assert crafted.dump(crafted.load(data)) == data
    for src in sources(data):
        with invrcodec.open(src) as f:
            pkts = list(f.demux())
            assert f.version == (4, 0) and f.header.tiles == TileGrid(8, 8, 2)
    with invrcodec.open(GOLDEN) as f:
        assert [p.tensors for p in pkts] == [p.tensors * 4 for p in f.demux()]


def test_the_field_fuzzer_changes_the_overlap() -> None:
    """The overlap is one of the fields the fuzzer sets, and whatever value it takes, the demuxer reads the
    file or refuses it with one line."""
    base = GOLDEN.read_bytes()
    model = crafted.tiled(base, 8, 8, 2)
    assert (("tiles", "overlap"), "<L") in crafted._leaves(fmt.HEADER_BODY_V4, model.header, ())
    picked = [crafted._mutate_field(random.Random(seed), crafted.tiled(base, 8, 8, 2)) for seed in range(400)]
    assert any(did.startswith("header.tiles.overlap=") for did in picked)
    outcomes: dict[str, int] = {}
    for seed in range(60):
        rng = random.Random(seed)
        m = crafted.tiled(base, rng.choice([8, 5, 16]), rng.choice([8, 3, 16]), rng.choice([0, 1, 2]))
        m.header.tiles.overlap = crafted._int_value(rng, "<L", m.header.tiles.overlap)
        if seed % 2:
            crafted._mutate_field(rng, m)
        for src in sources(crafted.dump(m)):
            try:
                with invrcodec.open(src) as f:
                    list(f.demux())
                key = "read"
            except InvrFormatError as e:
                assert "\n" not in str(e), m.header.tiles
                key = type(e).__name__
            outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes.get("MalformedError", 0) > 20 and outcomes.get("read", 0) > 10, outcomes


def test_make_case_makes_overlapping_files() -> None:
    """tools/fuzz.py's cases include 4.0 files: the samples cut into tiles that overlap."""
    dids = [crafted.make_case(seed)[1] for seed in range(300)]
    assert any(" overlap " in did for did in dids)


# --- the golden file ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not GOLDEN_OVERLAP.exists(), reason="samples/tiny-overlap.invr not made yet")
def test_overlap_golden_file_reads_to_its_header() -> None:
    """make_golden.py --overlap: tiny-tiles.invr's clip and tiles, overlapping by 2 (spec "Tiles")."""
    data = GOLDEN_OVERLAP.read_bytes()
    with invrcodec.open(GOLDEN_TILES) as f:
        tiles_header = f.header
    for src in sources(data):
        with invrcodec.open(src) as f:
            pkts = list(f.demux())
            assert f.version == (4, 0) and f.size == len(data)
            assert f.header.tiles == TileGrid(8, 8, 2) and [t.area for t in f.header.tile_list()] == [
                (0, 0, 10, 10), (6, 0, 10, 10), (0, 6, 10, 10), (6, 6, 10, 10)]
            assert f.header.stream == tiles_header.stream
            assert f.header.representation == tiles_header.representation
            assert "overlap=2" in f.header.metadata.settings.split()
            assert [e.prediction for e in f.index] == [Prediction.KEY, Prediction.PREVIOUS]
    assert [(p.index, p.first_frame, p.frame_count, len(p.tensors)) for p in pkts] == [
        (0, 0, 2, 24), (1, 2, 2, 24)]
    assert all(20 < p.train_psnr < 60 for p in pkts)
    assert data[0x6C:0x78] == fmt.TILE_GRID_V4.build({"tile_width": 8, "tile_height": 8, "overlap": 2})
    assert data.startswith(fmt.MAGIC + b"\x04\x00\x00\x00")


@pytest.mark.skipif(not GOLDEN_OVERLAP.exists(), reason="samples/tiny-overlap.invr not made yet")
def test_overlap_golden_file_decodes() -> None:
    """The committed 4.0 file decodes, whole and from its P-chunk's frames, to the same frames."""
    pytest.importorskip("torch")
    try:
        import invrcodec.codec.decoder  # noqa: F401
        from invrcodec.coding import deepcabac

        deepcabac._lib()
    except (ImportError, InvrError) as e:
        pytest.skip(f"the decoder is not usable here: {e}")
    _decodes_whole_and_in_part(GOLDEN_OVERLAP)
