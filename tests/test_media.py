"""invrcodec.media.pyav: reading sources into RGB frames and writing RGB frames out, through PyAV."""

from __future__ import annotations

import io
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import psnr, read_rgb, synthetic_frames, write_audio_only, write_clip

from invrcodec.errors import InvrMediaError
from invrcodec.media.pyav import VideoReader, VideoWriter, choose_output_format, parse_size
from invrcodec.types import StreamInfo


def test_reads_y4m_file_with_stream_facts(tiny_y4m: Path, tiny_frames: np.ndarray) -> None:
    with VideoReader(tiny_y4m) as reader:
        frames = list(reader)
        info = reader.info
    assert len(frames) == len(tiny_frames)
    assert frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8
    assert (info.width, info.height, info.frame_rate, info.time_base) == (32, 32, Fraction(25), Fraction(1, 25))
    assert info.pix_fmt == "yuv444p"
    assert min(psnr(a, b) for a, b in zip(frames, tiny_frames)) > 40


def test_reads_y4m_from_a_pipe_object_by_its_magic(tiny_y4m: Path) -> None:
    class Pipe(io.RawIOBase):  # non-seekable, hands out a few bytes at a time like a pipe
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            n = min(len(b), 7, len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    with VideoReader(Pipe(tiny_y4m.read_bytes()), name="stdin") as reader:  # type: ignore[arg-type]
        assert reader.info.frame_count == 0  # unknown on a pipe
        assert sum(1 for _ in reader) == 6
        assert reader.frames_read == 6


def test_frames_is_a_lazy_generator(make_clip) -> None:  # type: ignore[no-untyped-def]
    path = make_clip("long.mkv", 16, 16, 40)
    with VideoReader(path) as reader:
        gen = reader.frames()
        assert isinstance(gen, types.GeneratorType)
        next(gen)
        assert reader.frames_read == 1


def test_seek_and_frames_select_a_range(tiny_mp4: Path, tiny_frames: np.ndarray) -> None:
    with VideoReader(tiny_mp4, seek=2, frames=3) as reader:
        frames = list(reader)
        assert reader.info.frame_count == 3
    assert len(frames) == 3
    for got, want in zip(frames, tiny_frames[2:5]):
        assert psnr(got, want) > 30
    assert psnr(frames[0], tiny_frames[0]) < psnr(frames[0], tiny_frames[2])


def test_seek_past_the_end_is_a_clear_error(tiny_mp4: Path) -> None:
    with pytest.raises(InvrMediaError, match=r"--seek 10 is past the last frame \(the video has 6 frames\)"):
        VideoReader(tiny_mp4, seek=10)


def test_odd_sizes_read_and_write_exactly(odd_mkv: Path, tmp_path: Path) -> None:
    with VideoReader(odd_mkv) as reader:
        frames = list(reader)
        info = reader.info
    assert frames[0].shape == (93, 127, 3)
    for ext in (".mp4", ".mkv", ".y4m", ".webm", ".avi"):
        out = tmp_path / f"odd{ext}"
        with VideoWriter(out, info, choose_output_format(str(out)), ext=ext) as writer:
            for f in frames:
                writer.write(f)
        back = read_rgb(out)
        assert back.shape == (3, 93, 127, 3), ext
        assert min(psnr(a, b) for a, b in zip(frames, back)) > 30, ext
        if ext in (".mp4", ".mkv"):
            assert writer.pix_fmt == "yuv444p"  # libx264 4:2:0 needs even sizes


def test_even_mp4_defaults_to_yuv420p(tiny_mp4: Path, tmp_path: Path) -> None:
    with VideoReader(tiny_mp4) as reader:
        frames = list(reader)
        out = tmp_path / "even.mp4"
        with VideoWriter(out, reader.info, choose_output_format(str(out))) as writer:
            for f in frames:
                writer.write(f)
    assert writer.pix_fmt == "yuv420p"
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_rawvideo_is_exact_rgb(tmp_path: Path) -> None:
    frames = synthetic_frames(9, 7, 2)
    info = StreamInfo(width=9, height=7, frame_count=2)
    out = tmp_path / "x.rgb"
    with VideoWriter(out, info, choose_output_format(str(out)), ext=".rgb") as writer:
        for f in frames:
            writer.write(f)
    assert out.read_bytes() == frames.tobytes()


def test_y4m_to_a_pipe_object(tmp_path: Path) -> None:
    frames = synthetic_frames(10, 6, 3)
    info = StreamInfo(width=10, height=6, frame_count=3, frame_rate=Fraction(30000, 1001))
    sink = io.BytesIO()
    writer = VideoWriter(sink, info, choose_output_format(None), pix_fmt="yuv444p", name="stdout")
    for f in frames:
        writer.write(f)
    writer.close()
    data = sink.getvalue()
    header = data.split(b"\n", 1)[0]
    assert header.startswith(b"YUV4MPEG2 W10 H6 F30000:1001 Ip")
    assert b" C444" in header
    assert data.count(b"FRAME\n") == 3
    assert len(data) == len(header) + 1 + 3 * (6 + 10 * 6 * 3)


def test_bt709_tags_survive_a_round_trip(tmp_path: Path) -> None:
    frames = synthetic_frames(64, 64, 2)
    info = StreamInfo(width=64, height=64, frame_count=2, color_space=1, color_primaries=1, color_trc=1,
                      color_range=1)
    out = tmp_path / "c.mkv"
    with VideoWriter(out, info, choose_output_format(str(out))) as writer:
        for f in frames:
            writer.write(f)
    with VideoReader(out) as reader:
        back = list(reader)
        assert (reader.info.color_space, reader.info.color_primaries, reader.info.color_trc) == (1, 1, 1)
    assert min(psnr(a, b) for a, b in zip(frames, back)) > 35


def test_crop_square_and_area_scale(make_clip) -> None:  # type: ignore[no-untyped-def]
    path = make_clip("wide.mkv", 64, 32, 2)
    with VideoReader(path, crop_square=True, scale=(16, 16)) as reader:
        frames = list(reader)
        assert (reader.info.width, reader.info.height) == (16, 16)
        assert (reader.source_info.width, reader.source_info.height) == (64, 32)
        assert reader.info.sample_aspect_ratio == 1
    assert frames[0].shape == (16, 16, 3)
    with VideoReader(path, scale=(32, 32)) as reader:
        # 64x32 shown as 32x32 pixels: each pixel is twice as wide as tall.
        assert reader.info.sample_aspect_ratio == Fraction(2)


@pytest.mark.parametrize(
    ("pix_fmt", "note"),
    [("gray", "grayscale"), ("yuva420p", "alpha"), ("yuv420p10le", "10-bit")],
)
def test_gray_alpha_and_10bit_sources_become_8bit_rgb(tmp_path: Path, pix_fmt: str, note: str) -> None:
    frames = synthetic_frames(64, 32, 2)
    path = write_clip(tmp_path / f"src_{pix_fmt}.mkv", frames, codec="ffv1", pix_fmt=pix_fmt)
    with VideoReader(path) as reader:
        got = list(reader)
        assert any(note in n for n in reader.notes), reader.notes
        assert reader.info.pix_fmt == pix_fmt
    assert got[0].shape == (32, 64, 3) and got[0].dtype == np.uint8
    if pix_fmt == "gray":
        assert np.array_equal(got[0][..., 0], got[0][..., 1])
    else:
        assert psnr(got[0], frames[0]) > 30


def test_other_streams_are_reported(tiny_audio_mp4: Path) -> None:
    with VideoReader(tiny_audio_mp4) as reader:
        assert [(s.kind, s.codec) for s in reader.other_streams] == [("audio", "aac")]
        assert sum(1 for _ in reader) == 6


def test_audio_only_file_is_refused(tmp_path: Path) -> None:
    path = write_audio_only(tmp_path / "sound.m4a")
    with pytest.raises(InvrMediaError, match=r"sound\.m4a: no video stream \(audio only\)"):
        VideoReader(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.mp4", r"missing\.mp4: No such file or directory"),
        (lambda p: p, r"is a directory"),
        (lambda p: (p / "text.mp4").write_text("hello") and p / "text.mp4", r"text\.mp4: cannot read as video"),
    ],
)
def test_unreadable_inputs(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvrMediaError, match=message):
        VideoReader(make(tmp_path))


def test_empty_and_non_y4m_pipes(tmp_path: Path) -> None:
    with pytest.raises(InvrMediaError, match="empty input"):
        VideoReader(io.BytesIO(b""), name="stdin")
    with pytest.raises(InvrMediaError, match="stdin: cannot read as video"):
        VideoReader(io.BytesIO(b"not a video at all" * 10), name="stdin")


def test_output_format_choice() -> None:
    assert choose_output_format(None).format == "yuv4mpegpipe"
    assert choose_output_format("a.MKV").format == "matroska"
    assert choose_output_format("a.y4m").codec == "wrapped_avframe"
    assert choose_output_format("-", "rawvideo").format == "rawvideo"
    assert choose_output_format("x.bin", "y4m").format == "yuv4mpegpipe"
    with pytest.raises(InvrMediaError, match="cannot tell the output format"):
        choose_output_format("x.bin")
    with pytest.raises(InvrMediaError, match="unknown output format"):
        choose_output_format("x.y4m", "nosuchformat")


def test_wrong_frame_shape_is_refused(tmp_path: Path) -> None:
    info = StreamInfo(width=8, height=8, frame_count=1)
    writer = VideoWriter(tmp_path / "x.y4m", info, choose_output_format("x.y4m"))
    with pytest.raises(InvrMediaError, match="expected"):
        writer.write(np.zeros((8, 9, 3), np.uint8))
    writer.abort()


def test_parse_size() -> None:
    assert parse_size("128x96") == (128, 96)
    assert parse_size("64:48") == (64, 48)
    for bad in ("128", "0x5", "axb", "1x2x3"):
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_frame_times_survive_the_muxer_changing_the_stream_time_base(tmp_path: Path, ext: str) -> None:
    """The muxer sets the stream time base when it writes the header (Matroska: 1/1000), which x264 reaches
    after its lookahead (about 40 frames): frames written after that kept their numbers as pts but took the
    stream's time base, so they collapsed onto a few instants and x264's flush failed ("pts < dts"). Now 60
    frames come out 1/25 s apart."""
    from invrcodec.media.pyav import VideoWriter, choose_output_format
    from invrcodec.types import StreamInfo

    path = tmp_path / f"long{ext}"
    info = StreamInfo(16, 16, 60, frame_rate=Fraction(25), time_base=Fraction(1, 25))
    with VideoWriter(str(path), info, choose_output_format(str(path))) as writer:
        for rgb in synthetic_frames(16, 16, 60):
            writer.write(rgb)
    with av.open(str(path)) as c:
        times = sorted(float(f.pts * f.time_base) for f in c.decode(video=0))
    assert times == pytest.approx([i / 25 for i in range(60)], abs=1e-3)
