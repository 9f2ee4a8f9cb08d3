"""invr-dec through the installed console script: output formats, ranges, raw frames, damaged input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_DEC, ROOT, psnr, read_rgb, run

import invrcodec


def _reference(tiny_invr: Path) -> np.ndarray:
    with invrcodec.open(tiny_invr) as f:
        return np.stack(list(f.decode()))


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".y4m", ".nut"])
def test_decode_to_files(tiny_invr: Path, tiny_frames: np.ndarray, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"out{ext}"
    proc = run(["invr-dec", *FAST_DEC, tiny_invr, out])
    assert proc.returncode == 0, proc.stderr
    assert "decoded 6 frames" in proc.stderr.decode()
    frames = read_rgb(out)
    assert frames.shape == (6, 32, 32, 3)
    assert min(psnr(a, b) for a, b in zip(frames, tiny_frames)) > 15
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_rawvideo_rgb24_is_the_decoder_output(tiny_invr: Path, tmp_path: Path) -> None:
    proc = run(["invr-dec", *FAST_DEC, "-f", "rawvideo", "--pix-fmt", "rgb24", tiny_invr, "-"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _reference(tiny_invr).tobytes()


def test_rawvideo_yuv420p_size(tiny_invr: Path) -> None:
    proc = run(["invr-dec", *FAST_DEC, "-q", "-f", "rawvideo", "--pix-fmt", "yuv420p", tiny_invr, "-"])
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) == 6 * 32 * 32 * 3 // 2


def test_y4m_on_stdout_by_default(tiny_invr: Path) -> None:
    proc = run(["invr-dec", *FAST_DEC, "-q", tiny_invr, "-"])
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.split(b"\n", 1)[0]
    assert header.startswith(b"YUV4MPEG2 W32 H32 F25:1")
    assert b"C444" in header  # the source was 4:4:4
    assert proc.stdout.count(b"FRAME\n") == 6
    proc = run(["invr-dec", *FAST_DEC, "-q", "--pix-fmt", "yuv420p", tiny_invr, "-"])
    assert b" C420" in proc.stdout.split(b"\n", 1)[0]


@pytest.mark.parametrize(("seek", "frames", "want"), [(0, 2, 2), (4, None, 2), (2, 3, 3), (5, 10, 1)])
def test_seek_and_frames(tiny_invr: Path, tmp_path: Path, seek: int, frames: int | None, want: int) -> None:
    args = ["--seek", str(seek)] + (["--frames", str(frames)] if frames else [])
    proc = run(["invr-dec", *FAST_DEC, "-q", "-f", "rawvideo", *args, tiny_invr, "-"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _reference(tiny_invr)[seek : seek + want].tobytes()


def test_seek_past_the_end(tiny_invr: Path, tmp_path: Path) -> None:
    proc = run(["invr-dec", *FAST_DEC, "--seek", "6", tiny_invr, tmp_path / "o.y4m"])
    assert proc.returncode == 1
    assert proc.stderr.decode().strip().endswith("--seek 6 is past the last frame (the file has 6 frames)")
    assert not (tmp_path / "o.y4m").exists()


def test_decode_from_stdin(tiny_invr: Path) -> None:
    proc = run(["invr-dec", *FAST_DEC, "-q", "-f", "rawvideo", "-", "-"], input=tiny_invr.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _reference(tiny_invr).tobytes()


def test_overwrite_with_y(tiny_invr: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.y4m"
    out.write_bytes(b"old")
    proc = run(["invr-dec", *FAST_DEC, "-y", tiny_invr, out])
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(b"YUV4MPEG2 ")


@pytest.mark.parametrize("cut", [10, 200, -40])
def test_truncated_file_is_one_line_and_no_output(tiny_invr: Path, tmp_path: Path, cut: int) -> None:
    data = tiny_invr.read_bytes()
    bad = tmp_path / "bad.invr"
    bad.write_bytes(data[:cut])
    out = tmp_path / "o.mp4"
    proc = run(["invr-dec", *FAST_DEC, bad, out])
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith(f"invr-dec: error: {bad}: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.invr"]


def test_flipped_bit_is_reported(tiny_invr: Path, tmp_path: Path) -> None:
    data = bytearray(tiny_invr.read_bytes())
    data[len(data) // 2] ^= 0x10
    bad = tmp_path / "flip.invr"
    bad.write_bytes(bytes(data))
    proc = run(["invr-dec", *FAST_DEC, bad, tmp_path / "o.y4m"])
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr
    assert not (tmp_path / "o.y4m").exists()


def test_committed_sample_decodes(bin_dir: Path, tmp_path: Path) -> None:
    sample = ROOT / "samples" / "tiny.invr"
    out = tmp_path / "sample.y4m"
    proc = run(["invr-dec", *FAST_DEC, sample, out])
    assert proc.returncode == 0, proc.stderr
    with invrcodec.open(sample) as f:
        s = f.header.stream
        assert read_rgb(out).shape == (s.frame_count, s.height, s.width, 3)
