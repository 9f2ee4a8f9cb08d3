"""Crafted files with correct CRCs (issue 16): every rule of spec "Field rules" is refused, by the API
(an InvrFormatError) and by both tools (exit 1, one line); nncodec's limits as measured; --max-pixels."""

from __future__ import annotations

import importlib.util
import io
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import invrcodec
from invrcodec.format import rules
from invrcodec.errors import InvrFormatError, MalformedError

ROOT = Path(__file__).resolve().parents[1]
SPEC = (ROOT / "spec" / "invr-format.md").read_text(encoding="utf-8")
SAMPLE = ROOT / "samples" / "tiny-1.0.invr"

_spec = importlib.util.spec_from_file_location("invr_fuzz_tool", ROOT / "tools" / "fuzz.py")
assert _spec and _spec.loader
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz
_spec.loader.exec_module(fuzz)  # which puts tools/ on sys.path
from evalkit import crafted as craft  # noqa: E402  (a sample parsed, changed, written back with the CRCs)


def _section(name: str) -> str:
    return SPEC.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def _table(text: str, first_column: str) -> list[list[str]]:
    rows, inside = [], False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_column:
            inside = True
        elif inside and line.startswith("|") and not set(line) <= set("|- "):
            rows.append(cells)
        elif inside and not line.startswith("|"):
            break
    return rows


def _spec_number(text: str) -> float:
    m = re.fullmatch(r"(-?\d+)\^(-?\d+)", text)
    return float(int(m.group(1)) ** int(m.group(2))) if m else float(text)


def test_spec_lists_every_rule_and_limit() -> None:
    section = _section("Field rules")
    names = {row[0] for row in _table(section, "rule")}
    assert names == set(rules.RULES) | {"tensor payload"}
    limits = {row[0].strip("`"): _spec_number(row[1]) for row in _table(section, "limit")}
    assert limits == rules.RULE_LIMITS
    assert "-126 · 2^d .. 32 · 2^d − 1".replace("-", "−") in section
    assert rules.qp_range(2) == (-126 * 4, 32 * 4 - 1)


# --- one crafted file per rule: the sample with one field changed and every CRC recomputed ----------------


def crafted(change: Callable[[Any], None]) -> bytes:
    model = craft.load(SAMPLE.read_bytes())
    change(model)
    return craft.dump(model)


def _rep(field: str, value: Any) -> Callable[[Any], None]:
    return lambda m: m.header.representation.__setitem__(field, value)


def _coder(field: str, value: Any) -> Callable[[Any], None]:
    return lambda m: m.header.coder.__setitem__(field, value)


def _tensor(chunk: int, tensor: int, field: str, value: Any) -> Callable[[Any], None]:
    return lambda m: m.chunks[chunk].tensors[tensor].__setitem__(field, value)


# (rule, change, what the one-line message must say)
CASES: list[tuple[str, Callable[[Any], None], str]] = [
    ("w0", _rep("w0", 0.0), "header: w0 0.0 not in [2^-16, 2^16]"),
    ("w0", _rep("w0", 1e-300), "header: w0 1e-300 not in"),
    ("w0", _rep("w0", 5e-324), "header: w0 5e-324 not in"),
    ("w0", _rep("w0", -1.0), "header: w0 -1.0 not in"),
    ("w0", _rep("w0", 1e308), "header: w0 1e+308 not in"),
    ("w0", _rep("w0", -1e308), "header: w0 -1e+308 not in"),
    ("w0", _rep("w0", math.nan), "header: w0 nan is not finite"),
    ("sigma", _rep("sigma", 1e308), "header: sigma 1e+308 not in"),
    ("sigma", _rep("sigma", 2.0**-17), "not in [2^-16, 2^16]"),
    ("sigma", lambda m: (_rep("sigma", 2.0**16)(m), _rep("lx", 6)(m)), "frequency sigma^5 exceeds 2^64"),
    ("coder parameters", _coder("qp_density", 8), "header: qp_density 8 not in 0..7"),
    ("coder parameters", _coder("qp_density", 255), "header: qp_density 255 not in 0..7"),
    ("tensor qp", _tensor(1, 2, "qp", 2**31 - 1), "chunk 1: tensor layers.1.weight: qp 2147483647 not in"),
    ("tensor qp", _tensor(0, 0, "qp", -505), "chunk 0: tensor layers.0.weight: qp -505 not in"),
    ("tensor qp", _tensor(0, 5, "data", b"\x01"), "tensor out.bias: a DeepCABAC stream of 1 bytes"),
    ("tensor payload", _rep("hidden", 1), "chunk 0: tensor layers.0.weight: DeepCABAC stream does not"),
    ("tensor payload", _rep("lx", 5), "shape (16, 25)"),
    ("tensor payload", _rep("lt", 0), "chunk 0: tensor layers.0.weight"),
    ("tensor payload", _coder("cabac_unary_length_minus1", 0), "terminating bin not received"),
    ("tensor payload", _coder("cabac_unary_length_minus1", 255), "DeepCABAC stream"),
    ("tensor payload", _tensor(1, 0, "data", bytes(300)), "chunk 1: tensor layers.0.weight: DeepCABAC"),
]
IDS = [f"{rule}-{i}" for i, (rule, _, _) in enumerate(CASES)]


@pytest.mark.parametrize(("rule", "change", "message"), CASES, ids=IDS)
@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
def test_api_refuses_each_rule(rule: str, change: Callable[[Any], None], message: str, pipe: bool) -> None:
    """The tools name the chunk; the API's error for a tensor payload comes from the decoder, which knows
    only the tensor."""
    data = crafted(change)
    src: Any = io.BufferedReader(fuzz._Pipe(data)) if pipe else io.BytesIO(data)
    expected = re.sub(r"^chunk \d+: ", "", message) if rule == "tensor payload" else message
    with pytest.raises(InvrFormatError, match=re.escape(expected)):
        with invrcodec.open(src) as f:
            list(f.decode())


def _tool(fn: Callable[[], Any], capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code, err = fuzz._run_tool(fn)
    assert capfd.readouterr().out == ""  # nothing behind Python's back on fd 1 (nncodec prints there)
    return code, err.splitlines()


@pytest.mark.parametrize(("rule", "change", "message"), CASES[::3] + CASES[13:14], ids=IDS[::3] + IDS[13:14])
def test_tools_refuse_each_rule_in_one_line(rule: str, change: Callable[[Any], None], message: str,
                                            tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from invrcodec.cli import common, dec, probe

    path = tmp_path / "crafted.invr"
    path.write_bytes(crafted(change))
    code, lines = _tool(lambda: probe.main.main([str(path)], standalone_mode=False), capfd)
    assert (code, len(lines)) == (1, 1) and lines[0].startswith(f"invr-probe: error: {path}: ")
    assert message in lines[0]
    argv = [str(path), str(tmp_path / "out.y4m")]
    code, lines = _tool(lambda: common.run_main(dec.command, "invr-dec", argv), capfd)
    assert (code, len(lines)) == (1, 1) and lines[0].startswith(f"invr-dec: error: {path}: ")
    assert message in lines[0] and not (tmp_path / "out.y4m").exists()


def _grid(tile_width: int, tile_height: int) -> Callable[[Any], None]:
    return lambda m: m.header.__setitem__("tiles", {"tile_width": tile_width, "tile_height": tile_height})


def _overlap(tile_width: int, tile_height: int, overlap: int) -> Callable[[Any], None]:
    """The tiled sample as a 4.0 file (HeaderBodyV4) of tiles of ``tile_width x tile_height`` and
    ``overlap``."""

    def change(m: Any) -> None:
        m.major = m.layout = 4
        m.header["tiles"] = {"tile_width": tile_width, "tile_height": tile_height, "overlap": overlap}

    return change


# The tile rules (3.0, 4.0): the sample cut into tiles (craft.tiled), then its grid changed; refused with the
# header.
TILE_CASES: list[tuple[str, Callable[[Any], None], str]] = [
    ("tile grid", _grid(0, 8), "header: tile_width 0 not in 1..16 (the width)"),
    ("tile grid", _grid(8, 17), "header: tile_height 17 not in 1..16 (the height)"),
    ("tile parameters", lambda m: (_grid(1, 1)(m), _rep("hidden", 400)(m)),
     "header: 256 tiles of 171203 parameters are 43827968 per chunk (at most 33554432)"),
    ("tile overlap", _overlap(8, 8, 5),
     "header: overlap 5 of tiles 8x8 in 16x16: at most 4 (half the narrowest tile)"),
    ("tile overlap", _overlap(16, 6, 3),  # one column: only the rows of 6, 6 and 4 count
     "header: overlap 3 of tiles 16x6 in 16x16: at most 2 (half the narrowest tile)"),
]


@pytest.mark.parametrize(("rule", "change", "message"), TILE_CASES, ids=[c[0] for c in TILE_CASES])
def test_tools_refuse_each_tile_rule_in_one_line(rule: str, change: Callable[[Any], None], message: str,
                                                 tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from invrcodec.cli import common, dec, probe

    model = craft.tiled(SAMPLE.read_bytes(), 8, 8)
    change(model)
    path = tmp_path / "crafted.invr"
    path.write_bytes(craft.dump(model))
    code, lines = _tool(lambda: probe.main.main([str(path)], standalone_mode=False), capfd)
    assert (code, lines) == (1, [f"invr-probe: error: {path}: {message}"])
    argv = [str(path), str(tmp_path / "out.y4m")]
    code, lines = _tool(lambda: common.run_main(dec.command, "invr-dec", argv), capfd)
    assert (code, lines) == (1, [f"invr-dec: error: {path}: {message}"]) and not (tmp_path / "out.y4m").exists()
    with pytest.raises(InvrFormatError, match=re.escape(message)):
        invrcodec.open(io.BytesIO(path.read_bytes()))


def test_the_unchanged_sample_passes_every_rule() -> None:
    with invrcodec.open(io.BytesIO(crafted(lambda m: None))) as f:
        assert len(list(f.decode())) == 4


def test_a_lawful_change_still_decodes() -> None:
    """qp_density 0 and another tensor QP are lawful: the file decodes (to other colours)."""
    for change in (_coder("qp_density", 0), _tensor(0, 0, "qp", 127)):
        with invrcodec.open(io.BytesIO(crafted(change))) as f:
            assert len(list(f.decode())) == 4


# --- nncodec as measured (the reasons for the limits) -------------------------------------------------


def test_nncodec_steps_are_wrong_beyond_the_limits() -> None:
    """qp_density 31 gives a negative step and a QP past the range an infinite weight: why the rules exist."""
    from nncodec.extensions import deepCABAC as dc

    def raw_dequant(qp_density: int, qp: int) -> np.ndarray:
        out = np.zeros(2, np.float32)
        dc.Decoder().dequantLayer(out, np.array([1, 2**31 - 1], np.int32), qp_density, qp, 0)
        return out

    assert raw_dequant(31, 0)[0] < 0
    lo, hi = rules.qp_range(2)
    assert np.isfinite(raw_dequant(2, hi)).all() and raw_dequant(2, lo)[0] > 0
    assert not np.isfinite(raw_dequant(2, 127 * 4)).all()
    assert raw_dequant(2, -151 * 4)[0] == 0


@pytest.mark.parametrize("unary", [0, 1, 10, 31, 255])
def test_every_unary_length_round_trips(unary: int) -> None:
    from invrcodec.coding import deepcabac

    rng = np.random.default_rng(unary)
    w = (rng.standard_normal((24, 40)) * rng.choice([0.0, 1.0, 50.0], (24, 40))).astype(np.float32)
    for dq in (False, True):
        levels = deepcabac.quantize(w, -8, 2, dq, unary)  # dependent quantisation constrains the levels
        assert np.abs(levels).max() > 100
        data = deepcabac.encode_levels(levels, dq, unary)
        assert (deepcabac.decode_levels(data, levels.shape, dq, unary) == levels).all()


def test_random_streams_raise_only_malformed(capfd: pytest.CaptureFixture[str]) -> None:
    """Whatever the bytes and the shape, decode_levels raises MalformedError (one line) or decodes; it never
    crashes, never reads past its buffer, never prints."""
    from invrcodec.coding import deepcabac

    rng = np.random.default_rng(16)
    outcomes: dict[str, int] = {}
    for i in range(600):
        data = rng.integers(0, 256, int(rng.integers(0, 300))).astype(np.uint8).tobytes()
        shape = (int(rng.integers(1, 64)), int(rng.integers(1, 64)))
        try:
            deepcabac.decode_levels(data, shape, bool(i % 2), int(rng.integers(0, 256)))
            key = "decoded"
        except MalformedError as e:
            assert "\n" not in str(e)
            key = str(e).split(" (")[0].split(" of ")[0]
        outcomes[key] = outcomes.get(key, 0) + 1
    assert capfd.readouterr().out == ""
    assert sum(outcomes.values()) == 600 and len(outcomes) >= 2


# --- the guard on work --------------------------------------------------------------------------------


def test_max_pixels_refuses_before_decoding(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from invrcodec.cli import common, dec

    huge = tmp_path / "huge.invr"
    huge.write_bytes(crafted(lambda m: (m.header.stream.__setitem__("width", 65535),
                                        m.header.stream.__setitem__("height", 65535))))
    out = tmp_path / "out.y4m"
    code, lines = _tool(lambda: common.run_main(dec.command, "invr-dec", [str(huge), str(out)]), capfd)
    assert code == 1 and len(lines) == 1
    assert "65535x65535 is 4294836225 pixels per frame, over the limit of 67108864" in lines[0]
    assert "4 frames would take 17.2 G network runs" in lines[0] and "51.5 GB of RGB" in lines[0]
    assert "raise --max-pixels" in lines[0] and not out.exists()
    argv = ["--max-pixels", "255", str(SAMPLE), str(out)]
    code, lines = _tool(lambda: common.run_main(dec.command, "invr-dec", argv), capfd)
    assert code == 1 and "16x16 is 256 pixels per frame, over the limit of 255" in lines[0]
    argv = ["--max-pixels", "256", "-q", str(SAMPLE), str(out)]
    code, lines = _tool(lambda: common.run_main(dec.command, "invr-dec", argv), capfd)
    assert (code, lines) == (0, []) and out.stat().st_size > 0


def test_an_error_after_the_banner_is_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """invr-dec holds its banner until a frame is out: a file refused at its second chunk gives one line."""
    from invrcodec.cli import common, dec

    bad = tmp_path / "bad.invr"
    bad.write_bytes(crafted(_tensor(1, 3, "data", bytes(40))))
    argv = [str(bad), str(tmp_path / "o.y4m")]
    code, lines = _tool(lambda: common.run_main(dec.command, "invr-dec", argv), capfd)
    assert code == 1 and len(lines) == 1 and "chunk 1: tensor layers.1.bias" in lines[0]


def test_an_odd_frame_rate_is_approximated(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Found by tools/fuzz.py: a lawful u32 frame rate over FFmpeg's int range ended in an OverflowError."""
    from invrcodec.cli import common, dec

    odd = tmp_path / "odd.invr"
    odd.write_bytes(crafted(lambda m: m.header.stream.__setitem__("frame_rate_num", 2648623550)))
    argv = ["-y", str(odd), str(tmp_path / "o.y4m")]
    code, lines = _tool(lambda: common.run_main(dec.command, "invr-dec", argv), capfd)
    assert code == 0 and (tmp_path / "o.y4m").stat().st_size > 0
    assert any("frame rate 2648623550/1001 does not fit FFmpeg's 32-bit fractions" in line for line in lines)
