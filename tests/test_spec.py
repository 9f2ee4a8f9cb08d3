"""spec/invr-format.md and invrcodec/format/structs.py agree: byte tables, identifiers, limits, tags, the
example dumps."""

from __future__ import annotations

import importlib.util
import re
from enum import IntEnum
from pathlib import Path

import construct as c
import pytest

from invrcodec.format import structs as fmt
from invrcodec import types

ROOT = Path(__file__).resolve().parents[1]
SPEC = (ROOT / "spec" / "invr-format.md").read_text(encoding="utf-8")
GOLDEN = ROOT / "samples" / "tiny.invr"
GOLDEN_AUDIO = ROOT / "samples" / "tiny-audio.invr"
EXAMPLES = {"Example": GOLDEN, "Example with audio": GOLDEN_AUDIO}  # spec section -> the file it dumps
GOLDEN_TILED = [ROOT / "samples" / "tiny-tiles.invr", ROOT / "samples" / "tiny-overlap.invr"]  # spec "Tiles"

STRUCT_COLUMNS = ["offset", "size", "field", "type", "meaning"]
REGISTRY_COLUMNS = ["id", "name", "meaning"]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tables() -> dict[str, list[tuple[list[str], list[list[str]]]]]:
    """Every markdown table, under the ``###`` (or ``##``) heading it follows."""
    out: dict[str, list[tuple[list[str], list[list[str]]]]] = {}
    heading = ""
    lines = SPEC.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^#{2,3} (.+)$", line)
        if m:
            heading = m.group(1).strip()
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-| ]+\|$", lines[i + 1].strip()):
            columns = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.setdefault(heading, []).append((columns, rows))
            continue
        i += 1
    return out


TABLES = tables()
STRUCT_NAMES = {id(s): name for name, s in fmt.STRUCTS.items()}
FORMAT_TYPES = {"<B": "u8", "<H": "u16", "<L": "u32", "<Q": "u64", "<l": "i32", "<q": "i64", "<d": "f64"}


def _field_ref(expr: object) -> str:
    m = re.fullmatch(r"this\['(\w+)'\]", str(expr))
    if not m:
        raise AssertionError(f"unexpected length expression {expr}")
    return m.group(1)


def spec_type(sc: c.Construct) -> str:
    """The spec's name for the type of a construct field."""
    if isinstance(sc, c.Renamed):
        return spec_type(sc.subcon)
    if isinstance(sc, (c.Const, c.Rebuild)):
        return spec_type(sc.subcon)
    if isinstance(sc, c.Checksum):
        return spec_type(sc.checksumfield)
    if isinstance(sc, c.FormatField):
        return FORMAT_TYPES[sc.fmtstr]
    if isinstance(sc, c.Bytes):
        return f"bytes[{sc.length}]" if isinstance(sc.length, int) else f"bytes[{_field_ref(sc.length)}]"
    if isinstance(sc, c.StringEncoded):
        key = (sc.encoding, sc.subcon.lengthfield.fmtstr)
        return {("ascii", "<B"): "str8", ("utf8", "<H"): "ustr16"}[key]
    if isinstance(sc, c.Struct):
        return STRUCT_NAMES[id(sc)]
    if isinstance(sc, c.Array):
        return f"{spec_type(sc.subcon)}[{_field_ref(sc.count)}]"
    if isinstance(sc, c.GreedyRange):
        return f"{spec_type(sc.subcon)}[*]"
    raise AssertionError(f"no spec type for {sc!r}")


def _size(sc: c.Construct) -> int | None:
    try:
        return int(sc.sizeof())
    except c.SizeofError:
        return None


def struct_table(name: str) -> list[list[str]]:
    found = [rows for columns, rows in TABLES.get(name, []) if columns == STRUCT_COLUMNS]
    assert len(found) == 1, f'spec has no single byte table under "### {name}"'
    return found[0]


def test_every_struct_has_its_table_and_every_table_its_struct() -> None:
    with_tables = {h for h, ts in TABLES.items() if any(cols == STRUCT_COLUMNS for cols, _ in ts)}
    assert with_tables == set(fmt.STRUCTS)


@pytest.mark.parametrize("name", sorted(fmt.STRUCTS))
def test_table_matches_struct(name: str) -> None:
    struct = fmt.STRUCTS[name]
    rows = struct_table(name)
    fields = [sc for sc in struct.subcons if sc.name]
    assert [r[2] for r in rows] == [sc.name for sc in fields], "field names and order"
    assert [r[3] for r in rows] == [spec_type(sc) for sc in fields], "field types"
    offset: int | None = 0
    for row, sc in zip(rows, fields):
        cell_offset, cell_size = row[0], row[1]
        assert cell_offset == (str(offset) if offset is not None else "-"), f"offset of {sc.name}"
        size = _size(sc)
        assert cell_size == (str(size) if size is not None else "var"), f"size of {sc.name}"
        offset = offset + size if (offset is not None and size is not None) else None
    total = _size(struct)
    if total is not None:
        assert offset == total
        section = SPEC.split(f"### {name}\n", 1)[1].split("\n#", 1)[0]
        stated = re.search(r"Size: (\d+) bytes", section)
        if stated:
            assert int(stated.group(1)) == total


def test_unnamed_subcons_are_only_terminators() -> None:
    for name, struct in fmt.STRUCTS.items():
        for sc in struct.subcons:
            if not sc.name:
                assert sc is c.Terminated, name


def test_magic_and_fixed_offsets() -> None:
    row = struct_table("Preamble")[0]
    spelled = re.search(r"`([0-9A-F ]+)`", row[4])
    assert spelled and bytes.fromhex(spelled.group(1)) == fmt.MAGIC
    assert fmt.PREAMBLE.sizeof() == fmt.PREAMBLE_SIZE == 16
    assert "`frame_count` is at file offset 24 and `duration` at file offset 52" in SPEC
    assert fmt.FRAME_COUNT_OFFSET == 24
    stream_rows = struct_table("StreamInfo")
    assert [r[0] for r in stream_rows if r[2] in ("frame_count", "duration")] == ["8", "36"]
    assert fmt.TRAILER_SIZE == 20 and fmt.RECORD_OVERHEAD == 12


REGISTRIES: dict[str, type[IntEnum]] = {
    "NetworkKind": types.NetworkKind,
    "EncodingKind": types.EncodingKind,
    "CoordConvention": types.CoordConvention,
    "CoderKind": types.CoderKind,
    "Prediction": types.Prediction,
}


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_identifier_registry(name: str) -> None:
    found = [rows for columns, rows in TABLES.get(name, []) if columns == REGISTRY_COLUMNS]
    assert len(found) == 1
    assert [(int(r[0]), r[1]) for r in found[0]] == [(m.value, m.name) for m in REGISTRIES[name]]


def test_limits_table() -> None:
    rows = next(rows for columns, rows in TABLES["Limits"] if columns[0] == "limit")
    assert {r[0].strip("`"): int(r[1]) for r in rows} == fmt.LIMITS


def test_record_tags_table() -> None:
    rows = next(rows for columns, rows in TABLES["Record"] if columns[0] == "tag")
    spec = {r[0].strip("`").encode(): (bytes.fromhex(r[1].strip("`")), r[2].strip("`")) for r in rows}
    assert spec == {
        fmt.TAG_CHUNK: (fmt.TAG_CHUNK, "ChunkBody"),
        fmt.TAG_INDEX: (fmt.TAG_INDEX, "IndexBody"),
        fmt.TAG_TRAILER: (fmt.TAG_TRAILER, "TrailerBody"),
        fmt.TAG_AUDIO: (fmt.TAG_AUDIO, "AudioPacketsBody"),
        fmt.TAG_AUDIO_INDEX: (fmt.TAG_AUDIO_INDEX, "AudioIndexBody"),
    }


def test_extension_tags_table() -> None:
    rows = next(rows for columns, rows in TABLES["Extension"] if columns[0] == "tag")
    spec = {r[0].strip("`").encode(): (bytes.fromhex(r[1].strip("`")), r[2].strip("`")) for r in rows}
    assert spec == {fmt.EXT_AUDIO_STREAM: (fmt.EXT_AUDIO_STREAM, "AudioStream")}


def test_version_in_title_matches_the_code() -> None:
    """The title names the newest version; each major's newest minor is what the code reads and writes."""
    newest = max(fmt.READABLE_MAJORS)
    assert SPEC.splitlines()[0].endswith(f"version {newest}.{fmt.NEWEST_MINOR[newest]}")
    assert (fmt.MAJOR_OVERLAP, fmt.MINOR_OVERLAP) == (4, 0)
    assert (fmt.MAJOR_TILES, fmt.MINOR_TILES) == (3, 0) and (fmt.MAJOR, fmt.MINOR) == (2, 1)
    assert set(fmt.NEWEST_MINOR) == set(fmt.READABLE_MAJORS) == {1, 2, 3, 4}
    assert "the major version is not 1, 2, 3 or 4" in SPEC
    assert "major version: 1, 2, 3 or 4" in struct_table("Preamble")[1][4]


def test_the_3_0_header_body_is_the_2_x_one_with_the_tile_grid() -> None:
    """spec "HeaderBodyV3": the 2.x header body's fields, a TileGrid after the representation."""
    v2 = [sc.name for sc in fmt.HEADER_BODY.subcons if sc.name]
    v3 = [sc.name for sc in fmt.HEADER_BODY_V3.subcons if sc.name]
    assert v3 == v2[:2] + ["tiles"] + v2[2:]
    assert fmt.STRUCTS["TileGrid"].sizeof() == 8
    assert "tiles" not in v2  # a 2.x file cannot carry a grid


def test_the_4_0_header_body_is_the_3_x_one_with_the_overlap() -> None:
    """spec "HeaderBodyV4": the 3.x header body's fields, its grid a TileGridV4 (TileGrid and overlap)."""
    v3 = {sc.name: sc.subcon for sc in fmt.HEADER_BODY_V3.subcons if sc.name}
    v4 = {sc.name: sc.subcon for sc in fmt.HEADER_BODY_V4.subcons if sc.name}
    assert list(v4) == list(v3) and v3["tiles"] is fmt.TILE_GRID and v4["tiles"] is fmt.TILE_GRID_V4
    assert all(v4[name] is v3[name] for name in ("stream", "representation", "coder", "metadata"))
    grid = [sc.name for sc in fmt.TILE_GRID.subcons]
    assert [sc.name for sc in fmt.TILE_GRID_V4.subcons] == grid + ["overlap"]
    assert fmt.STRUCTS["TileGridV4"].sizeof() == 12 and fmt.STRUCTS["HeaderBodyV4"] is fmt.HEADER_BODY_V4
    rules = [r[0] for r in TABLES["Field rules"][0][1]]
    assert rules.index("tile overlap") == rules.index("tile parameters") + 1


def test_the_tiles_example_is_the_grid_of_types() -> None:
    """spec "Tiles": the worked example's columns, rows and tile-local position are those of TileGrid."""
    grid = types.TileGrid(128, 128)
    assert grid.columns(300) == ((0, 128), (128, 128), (256, 44)) and grid.rows(200) == ((0, 128), (128, 72))
    tile = grid.tiles(300, 200)[5]
    assert (tile.x, tile.y, tile.width, tile.height) == (256, 128, 44, 72) and grid.count(300, 200) == 6
    x, y = 2 * ((260 - tile.x) / tile.width - 0.5), 2 * ((150 - tile.y) / tile.height - 0.5)
    section = SPEC.split("## Tiles\n", 1)[1].split("\n## ", 1)[0].replace("−", "-")
    for value in (x, y):  # the spec's four decimals, cut rather than rounded
        assert f"{value:.10f}"[:7] + "..." in section


def test_the_overlap_example_is_the_areas_and_weights_of_types() -> None:
    """spec "Tiles": the worked example of overlapping tiles, its areas from types.TileGrid and its weights
    from the formulas the spec gives (checked against each other: they sum to 1 across the blend)."""
    grid = types.TileGrid(128, 128, 4)
    tiles = grid.tiles(256, 128)
    assert [t.area for t in tiles] == [(0, 0, 132, 128), (124, 0, 132, 128)] and grid.overlap_fits(256, 128)
    o, (x0, w0), (x1, _) = 4, grid.columns(256)[0], grid.columns(256)[1]

    def right_0(u: float) -> float:
        return min(1.0, max(0.0, (x0 + w0 + o - 0.5 - u) / (2 * o)))

    def left_1(u: float) -> float:
        return min(1.0, max(0.0, (u - x1 + o + 0.5) / (2 * o)))

    assert (right_0(126), left_1(126)) == (0.6875, 0.3125)
    assert all(right_0(u) + left_1(u) == 1 for u in range(256))
    assert [u for u in range(256) if 0 < left_1(u) < 1] == list(range(124, 132))
    assert [left_1(u) for u in (124, 125, 131)] == [0.0625, 0.1875, 0.9375]
    section = SPEC.split("## Tiles\n", 1)[1].split("\n## ", 1)[0].replace("−", "-")
    assert "Tile 0's area is columns 0 .. 131 (132 wide" in section
    assert "tile 1's columns 124 .. 255 (132" in section
    assert "= 0.3125" in section and "= 0.6875" in section and "0.0625, 0.1875, ..., 0.9375" in section
    for i, value in ((126, "0.9090..."), (2, "-0.9696...")):
        x = 2 * (i / 132 - 0.5)
        assert f"{x:.4f}"[:-1] == value[:-4] and f"x = 2 ({i} / 132 - ½) = {value}" in section
    # the first example's frame takes an overlap of at most half its narrowest tile, the last column's 44
    assert types.TileGrid(128, 128, 22).overlap_fits(300, 200)
    assert not types.TileGrid(128, 128, 23).overlap_fits(300, 200)
    assert "the overlap may be at most 22, half the last\ncolumn's 44 pixels" in section


@pytest.mark.parametrize("path", GOLDEN_TILED, ids=[p.name for p in GOLDEN_TILED])
def test_the_tiled_samples_prose_matches_the_files(path: Path) -> None:
    """spec "Tiles": each tiled sample's size, and its grid right after the representation at 0x6c."""
    if not path.exists():
        pytest.skip(f"{path.name} not made yet")
    data = path.read_bytes()
    after = SPEC.split(f"`samples/{path.name}` (", 1)[1]
    prose = " ".join(after.split("\n\n", 1)[0].split(".\n`", 1)[0].split())  # up to the next sample's
    assert prose.startswith(f"{len(data)} bytes, written by `samples/make_golden.py --")
    assert "follows the representation at file offset 0x6c" in prose
    major = fmt.parse_preamble(data[:16]).major
    grid = {3: fmt.TILE_GRID, 4: fmt.TILE_GRID_V4}[major].parse(data[0x6C:])
    assert f"as a version {major}.0 file" in prose and (grid.tile_width, grid.tile_height) == (8, 8)
    if major == 4:
        assert "(its `overlap` at 0x74)" in prose and "overlapping by 2" in prose
        assert grid.overlap == int.from_bytes(data[0x74:0x78], "little") == 2


def _example_block(section: str = "Example") -> list[str]:
    m = re.search(rf"## {section}\n(?:.*\n)*?```text\n((?:.*\n)*?)```", SPEC)
    assert m, f"spec has no dump under {section!r}"
    return m.group(1).rstrip("\n").splitlines()


@pytest.mark.parametrize("section", sorted(EXAMPLES))
def test_example_dump_matches_the_golden_file(section: str) -> None:
    data = EXAMPLES[section].read_bytes()
    lines = _example_block(section)
    covered = 0
    for line in lines:
        m = re.match(r"^([0-9a-f]{8})  ((?:[0-9a-f]{2} )*[0-9a-f]{2})( …)?\s", line)
        assert m, f"unreadable dump line: {line}"
        offset = int(m.group(1), 16)
        shown = bytes.fromhex(m.group(2))
        assert data[offset : offset + len(shown)] == shown, line
        assert offset == covered, f"gap or overlap before {line}"
        if m.group(3):
            nxt = lines[lines.index(line) + 1] if line is not lines[-1] else None
            covered = int(nxt[:8], 16) if nxt else len(data)
        else:
            covered = offset + len(shown)
    assert covered == len(data)


@pytest.mark.parametrize("section", sorted(EXAMPLES))
def test_example_dump_is_what_make_golden_prints(section: str) -> None:
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "samples" / "make_golden.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.dump(EXAMPLES[section].read_bytes()).splitlines() == _example_block(section)


@pytest.mark.parametrize("path", sorted(EXAMPLES.values()))
def test_example_prose_matches_the_file(path: Path) -> None:
    assert f"`samples/{path.name}` ({path.stat().st_size} bytes)" in SPEC


def test_the_audio_example_is_a_2_1_file_with_the_chunks_of_the_2_0_one() -> None:
    """The version rules at work: a file without audio stays 2.0, byte for byte; audio makes it 2.1."""
    audio, plain = GOLDEN_AUDIO.read_bytes(), GOLDEN.read_bytes()
    assert fmt.parse_preamble(audio[:16]).minor == fmt.MINOR_AUDIO == fmt.MINOR
    assert fmt.parse_preamble(plain[:16]).minor == 0
    chunks = [plain[e.offset : e.offset + e.size] for e in _index(plain)]
    assert chunks == [audio[e.offset : e.offset + e.size] for e in _index(audio)]


def _index(data: bytes) -> list[object]:
    import io

    from invrcodec.format.demuxer import Demuxer

    return Demuxer(io.BytesIO(data)).index or []
