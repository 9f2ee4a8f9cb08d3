"""Y4M sources FFmpeg reads badly (issue 16): useful messages for bad headers, a warning for a cut frame."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from invrcodec.media import y4m
from invrcodec.errors import InvrMediaError
from invrcodec.media.pyav import VideoReader

HEADER = b"YUV4MPEG2 W16 H8 F25:1 Ip A1:1 C420jpeg\n"
FRAME = b"FRAME\n" + bytes(16 * 8 * 3 // 2)


def _read(tmp_path: Path, data: bytes, pipe: bool) -> int:
    path = tmp_path / "in.y4m"
    path.write_bytes(data)
    with path.open("rb") as fh, VideoReader(fh if pipe else path, name="in.y4m") as reader:
        return sum(1 for _ in reader)


@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
def test_a_frame_cut_short_is_reported(tmp_path: Path, pipe: bool, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="invrcodec"):
        assert _read(tmp_path, HEADER + FRAME * 3 + FRAME[:100], pipe) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "in.y4m: the stream ends inside frame 3 (100 of its 198 bytes, 16x8 C420jpeg); that partial frame is "
        "dropped"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="invrcodec"):
        assert _read(tmp_path, HEADER + FRAME * 3, pipe) == 3
    assert caplog.records == []


@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"YUV4MPEG2 W100000 H100 F25:1\n" + FRAME, "Y4M header: width 100000 is over 65535"),
        (b"YUV4MPEG2 W0 H16 F25:1\n" + FRAME, "Y4M header: width W0 is not a positive number"),
        (b"YUV4MPEG2 W16 H-5 F25:1\n" + FRAME, "Y4M header: height H-5 is not a positive number"),
        (b"YUV4MPEG2 garbage here\n" + FRAME, "Y4M header has no width (W<n>): 'YUV4MPEG2 garbage here'"),
        (b"YUV4MPEG2 W16 H8 " + b"x" * 300, "Y4M header line has no end within 256 bytes"),
        (b"YUV4MPEG2 W16 H8 F25:1 Cfoo\n" + FRAME, "(Y4M colour space Cfoo is not one FFmpeg reads)"),
        (b"YUV4MPEG2 W4000 H4000 F25:1\n" + FRAME,
         "no complete frame: the stream ends inside frame 0 (198 of its 24000006 bytes"),
    ],
    ids=["huge", "zero", "negative", "garbage", "endless", "colour", "first-frame-cut"],
)
def test_unusable_headers_say_why(tmp_path: Path, data: bytes, message: str, pipe: bool) -> None:
    with pytest.raises(InvrMediaError) as info:
        _read(tmp_path, data, pipe)
    assert str(info.value).startswith("in.y4m: ") and message in str(info.value)
    assert "Device or resource busy" not in str(info.value)


@pytest.mark.parametrize(
    ("colour", "size"),
    [("420jpeg", 16 * 8 + 2 * 8 * 4), ("422", 16 * 8 * 2), ("444", 16 * 8 * 3), ("mono", 16 * 8),
     ("444alpha", 16 * 8 * 4), ("420p10", 2 * (16 * 8 + 2 * 8 * 4)), ("mono16", 2 * 16 * 8), ("xyz", None)],
)
def test_frame_sizes(colour: str, size: int | None) -> None:
    assert y4m.Y4MHeader(16, 8, colour, 40).frame_bytes == size


def test_odd_sizes_round_chroma_up() -> None:
    assert y4m.Y4MHeader(5, 3, "420mpeg2", 30).frame_bytes == 15 + 2 * 3 * 2
