"""invr-probe: ffprobe's shapes and names, section selection, stdin, and one-line errors with exit 1."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import invrcodec
from invrcodec.cli.probe import main
from invrcodec.types import IndexEntry

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "samples" / "tiny.invr"
DATA = GOLDEN.read_bytes()


def probe(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def probe_pipe(*args: str, input: bytes) -> subprocess.CompletedProcess[bytes]:
    """A real process reading a real (non-seekable) pipe on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "invrcodec.cli.probe", *args],
        input=input,
        capture_output=True,
        timeout=120,
        check=False,
    )


def index() -> list[IndexEntry]:
    with invrcodec.open(GOLDEN) as f:
        return f.index


def test_summary() -> None:
    code, out, err = probe(str(GOLDEN))
    assert code == 0 and err == ""
    assert out.startswith(f"Input #0, invr, from '{GOLDEN}':\n")
    assert "Duration: 00:00:00.13" in out
    assert "16x16 [SAR 1:1 DAR 1:1]" in out and "29.97 fps" in out and "4 frames" in out
    assert "SIREN 2x16" in out and "DeepCABAC (nncodec 2.1.3)" in out
    assert "Chunks: 2 of up to 2 frames, 1 key, train PSNR mean" in out


def test_json_is_ffprobe_shaped() -> None:
    code, out, err = probe("-of", "json", str(GOLDEN))
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert list(doc) == ["streams", "format"]
    fmt = doc["format"]
    assert fmt["filename"] == str(GOLDEN)
    assert fmt["nb_streams"] == 1
    assert fmt["format_name"] == "invr" and isinstance(fmt["format_long_name"], str)
    assert fmt["duration"] == "0.133467"
    assert fmt["size"] == str(len(DATA))
    assert fmt["bit_rate"] == str(int(len(DATA) * 8 / (4 * 1001 / 30000)))
    assert fmt["tags"] == {"encoder": "invrcodec 0.1.0"}
    (s,) = doc["streams"]
    assert s["index"] == 0 and s["codec_type"] == "video" and s["codec_name"] == "invr"
    assert isinstance(s["codec_long_name"], str)
    assert (s["width"], s["height"]) == (16, 16)
    assert s["pix_fmt"] == "yuv420p"
    assert s["sample_aspect_ratio"] == "1:1"
    assert s["r_frame_rate"] == s["avg_frame_rate"] == "30000/1001"
    assert s["time_base"] == "1001/30000"
    assert s["nb_frames"] == "4"
    assert s["duration"] == "0.133467"
    assert s["duration_ts"] == 4
    chunk_bytes = sum(e.size for e in index())
    assert s["bit_rate"] == str(int(chunk_bytes * 8 / (4 * 1001 / 30000)))
    assert s["color_range"] == "tv" and s["color_space"] == "bt709"
    for key in ("duration", "bit_rate", "nb_frames"):
        assert isinstance(s[key], str)
    for key in ("duration", "size", "bit_rate"):
        assert isinstance(fmt[key], str)
    inv = s["invr"]
    assert inv["format_version"] == "2.0"
    assert inv["representation"]["hidden"] == 16 and inv["representation"]["layers"] == 2
    assert inv["representation"]["network"] == "siren" and inv["representation"]["encoding"] == "sinusoidal"
    assert [inv["representation"][k] for k in ("lx", "ly", "lt")] == [4, 4, 2]
    assert inv["coder"] == {
        "kind": "deepcabac",
        "nncodec_version": "2.1.3",
        "qp_density": 2,
        "dependent_quantization": True,
        "cabac_unary_length_minus1": 10,
    }
    assert inv["metadata"]["encoder"] == "invrcodec 0.1.0"
    assert inv["metadata"]["settings"].startswith("preset=ultrafast")
    assert inv["nb_chunks"] == 2
    assert "chunks" not in inv


def test_show_chunks() -> None:
    code, out, _ = probe("-of", "json", "-show_chunks", str(GOLDEN))
    assert code == 0
    chunks = json.loads(out)["streams"][0]["invr"]["chunks"]
    assert chunks == [  # the golden file's index: a key chunk, then a P-chunk
        {"index": 0, "first_frame": 0, "frame_count": 2, "offset": 477, "size": 870, "crc32": "0xa71096f4",
         "train_psnr": 35.5599, "prediction": "key"},
        {"index": 1, "first_frame": 2, "frame_count": 2, "offset": 1347, "size": 596, "crc32": "0x706a3d4f",
         "train_psnr": 28.2408, "prediction": "previous"},
    ]
    assert [(c["offset"], c["size"], int(c["crc32"], 16)) for c in chunks] == [
        (e.offset, e.size, e.crc32) for e in index()
    ]


@pytest.mark.parametrize(
    ("flags", "sections"),
    [
        ([], ["streams", "format"]),
        (["-show_format"], ["format"]),
        (["-show_streams"], ["streams"]),
        (["-show_format", "-show_streams"], ["streams", "format"]),
    ],
)
def test_section_selection(flags: list[str], sections: list[str]) -> None:
    code, out, _ = probe("-of", "json", *flags, str(GOLDEN))
    assert code == 0 and list(json.loads(out)) == sections


def test_default_writer() -> None:
    code, out, _ = probe("-show_format", str(GOLDEN))  # -show_* without -of: ffprobe's default writer
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "[FORMAT]" and lines[-1] == "[/FORMAT]"
    assert (
        "format_name=invr" in lines
        and f"size={len(DATA)}" in lines
        and "TAG:encoder=invrcodec 0.1.0" in lines
    )
    code, out, _ = probe("-of", "default", "-show_chunks", str(GOLDEN))
    assert code == 0
    assert out.count("[CHUNK]") == 2 and out.count("[STREAM]") == 1 and out.count("[FORMAT]") == 1
    assert "nb_frames=4" in out.splitlines() and "INVR:representation.hidden=16" in out.splitlines()
    for line in out.splitlines():
        assert line.startswith("[") or "=" in line


def test_loglevels_and_version() -> None:
    reference = probe("-of", "json", str(GOLDEN))
    for level in ("error", "quiet", "warning", "info", "debug"):
        assert probe("-v", level, "-of", "json", str(GOLDEN)) == reference
    code, out, _ = probe("--version")
    assert code == 0 and out == f"invr-probe {invrcodec.__version__}\n"


def test_stdin_through_a_real_pipe() -> None:
    proc = probe_pipe("-of", "json", "-show_chunks", "-", input=DATA)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["format"]["filename"] == "-"
    assert doc["format"]["size"] == str(len(DATA))
    assert doc["streams"][0]["nb_frames"] == "4"
    assert len(doc["streams"][0]["invr"]["chunks"]) == 2
    assert doc == json.loads(probe("-of", "json", "-show_chunks", "-", input=DATA)[1])  # seekable stdin too


def test_stdin_truncated_through_a_real_pipe() -> None:
    proc = probe_pipe("-", input=DATA[:1500])
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.decode().splitlines() == ["invr-probe: error: -: chunk 1: truncated at byte 1500"]


def _corrupt(tmp_path: Path, data: bytes, name: str = "a.invr") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_corrupt_chunk_is_one_line_and_exit_1(tmp_path: Path) -> None:
    e = index()[1]
    data = bytearray(DATA)
    data[e.offset + 100] ^= 0x10
    path = _corrupt(tmp_path, bytes(data))
    code, out, err = probe(str(path))
    assert (code, out) == (1, "")
    assert err == f"invr-probe: error: {path}: chunk 1: checksum mismatch\n"
    code, out, err = probe("-v", "quiet", str(path))
    assert (code, out, err) == (1, "", "")
    code, out, err = probe("-v", "debug", str(path))
    assert code == 1 and "Traceback" in err and err.endswith("chunk 1: checksum mismatch\n")


def test_other_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.invr"
    code, _, err = probe(str(missing))
    assert code == 1 and err == f"invr-probe: error: {missing}: No such file or directory\n"
    code, _, err = probe(str(_corrupt(tmp_path, b"hello world", "text.invr")))
    assert code == 1 and err.endswith(": not an INVR file (bad magic)\n")
    code, _, err = probe(str(_corrupt(tmp_path, DATA[:-1], "short.invr")))
    assert code == 1 and err.endswith("(truncated or unfinished)\n") and err.count("\n") == 1
    code, _, err = probe("-of", "xml", str(GOLDEN))
    assert code == 2
    code, _, _ = probe()
    assert code == 2


def _one_line_error(data: bytes, tmp_path: Path) -> None:
    path = _corrupt(tmp_path, data)
    code, out, err = probe(str(path))
    assert code == 1, err
    assert out == ""
    assert err.startswith(f"invr-probe: error: {path}: ") and err.count("\n") == 1 and "Traceback" not in err


def test_truncations_exit_1(tmp_path: Path) -> None:
    for n in range(0, len(DATA), 23):
        _one_line_error(DATA[:n], tmp_path)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(bit=st.integers(0, len(DATA) * 8 - 1))
def test_bit_flips_exit_1(bit: int, tmp_path: Path) -> None:
    data = bytearray(DATA)
    data[bit // 8] ^= 1 << (bit % 8)
    _one_line_error(bytes(data), tmp_path)


def test_bit_flip_through_a_pipe() -> None:
    e = index()[0]
    data = bytearray(DATA)
    data[e.offset + 50] ^= 1
    proc = probe_pipe("-", input=bytes(data))
    assert proc.returncode == 1
    assert proc.stderr.decode() == "invr-probe: error: -: chunk 0: checksum mismatch\n"


def test_empty_stream_probe() -> None:
    from invrcodec.types import CoderParams, Header, Representation, StreamInfo

    buf = io.BytesIO()
    with invrcodec.open(buf, "w", header=Header(StreamInfo(8, 8, 0), Representation(), CoderParams())):
        pass
    code, out, _ = probe("-of", "json", "-", input=buf.getvalue())
    assert code == 0
    doc = json.loads(out)
    assert doc["streams"][0]["nb_frames"] == "0" and doc["format"]["bit_rate"] == "0"
    assert probe("-", input=buf.getvalue())[0] == 0


def test_reader_closing_the_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "invrcodec.cli.probe", "-of", "default", "-show_chunks", str(GOLDEN)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    assert proc.wait(timeout=120) in (0, 141)  # 0 when everything fitted in the pipe before it closed
    assert proc.stderr.read() == b""


# --- tiles (format 3.0) -----------------------------------------------------------------------------------


def _tiled(tmp_path: Path, change: object = None, overlap: int | None = None) -> Path:
    """tiny.invr as a 3.0 file of 2 x 2 tiles (8x12 and 8x4), each tile the sample's network (every CRC
    recomputed), or a 4.0 one with their ``overlap``; ``change`` edits the crafted model first."""
    from test_format_tiles import crafted

    m = crafted.tiled(DATA, 8, 12, overlap)
    if callable(change):
        change(m)
    path = tmp_path / "tiled.invr"
    path.write_bytes(crafted.dump(m))
    return path


def test_an_untiled_file_shows_no_grid() -> None:
    _, out, _ = probe(str(GOLDEN))
    assert "tiles" not in out and "707 parameters per chunk" in out
    _, out, _ = probe("-of", "json", str(GOLDEN))
    assert "tiles" not in json.loads(out)["streams"][0]["invr"]


def test_a_tiled_file_shows_its_grid(tmp_path: Path) -> None:
    path = _tiled(tmp_path)
    code, out, err = probe(str(path))
    assert code == 0 and err == ""
    assert "Format: INVR 3.0" in out
    assert "Video: invr (SIREN 2x16, w0=30; sinusoidal 4/4/2 sigma=1.4 +xyt; tiles 2x2 of 8x12), 16x16 " in out
    assert "707 parameters per tile, 2828 per chunk" in out
    code, out, _ = probe("-of", "json", str(path))
    inv = json.loads(out)["streams"][0]["invr"]
    assert code == 0 and inv["format_version"] == "3.0"
    assert inv["tiles"] == {"tile_width": 8, "tile_height": 12, "overlap": 0, "columns": 2, "rows": 2,
                            "count": 4, "chunk_parameters": 2828}
    assert list(inv).index("tiles") == list(inv).index("representation") + 1
    code, out, _ = probe("-of", "default", "-show_streams", str(path))
    lines = out.splitlines()
    assert code == 0 and "INVR:tiles.columns=2" in lines and "INVR:tiles.tile_height=12" in lines


def test_an_overlapping_grid_shows_its_overlap(tmp_path: Path) -> None:
    """A 4.0 file: the overlap beside the grid, in the text and in invr.tiles."""
    path = _tiled(tmp_path, overlap=2)  # at most 2: half the last row's 4 pixels
    code, out, err = probe(str(path))
    assert code == 0 and err == ""
    assert "Format: INVR 4.0" in out
    assert "+xyt; tiles 2x2 of 8x12, overlap 2), 16x16 " in out
    assert "707 parameters per tile, 2828 per chunk" in out
    code, out, _ = probe("-of", "json", str(path))
    inv = json.loads(out)["streams"][0]["invr"]
    assert code == 0 and inv["format_version"] == "4.0"
    assert inv["tiles"] == {"tile_width": 8, "tile_height": 12, "overlap": 2, "columns": 2, "rows": 2,
                            "count": 4, "chunk_parameters": 2828}
    code, out, _ = probe("-of", "default", "-show_streams", str(path))
    assert code == 0 and "INVR:tiles.overlap=2" in out.splitlines()
    _, out, _ = probe(str(_tiled(tmp_path, overlap=0)))  # a 4.0 file whose tiles do not overlap: as 3.0 shows
    assert "Format: INVR 4.0" in out and "tiles 2x2 of 8x12), 16x16 " in out


def test_a_bad_tile_is_named_in_one_line(tmp_path: Path) -> None:
    """Every tile's tensors are decoded, and the one that fails is named."""

    def spoil(m: object) -> None:
        m.chunks[0].tensors[6 + 2].data = bytes(40)  # type: ignore[attr-defined]  (tile 1's layers.1.weight)

    path = _tiled(tmp_path, spoil)
    code, out, err = probe(str(path))
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith(f"invr-probe: error: {path}: chunk 0: tile 1: tensor layers.1.weight: ")
