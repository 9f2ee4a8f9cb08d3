"""Pipes with Debian's ffmpeg, ffprobe and ffplay in both directions, through the installed console scripts.

    ffmpeg -i x.mp4 -f yuv4mpegpipe - | invr-enc - out.invr
    invr-dec a.invr - | ffplay -autoexit -
    invr-dec a.invr - | ffmpeg -i - -f null -
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from conftest import BIN, FAST_DEC, FAST_ENC, psnr, read_rgb

import invrcodec

HEADLESS = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def _cmd(args: Sequence[str | os.PathLike[str]]) -> list[str]:
    argv = [str(a) for a in args]
    if (BIN / argv[0]).exists():
        argv[0] = str(BIN / argv[0])
    return argv


def pipeline(*commands: Sequence[str | os.PathLike[str]], stdin: bytes | None = None,
             env: dict[str, str] | None = None, timeout: float = 300) -> tuple[list[int], bytes, list[bytes]]:
    """Run ``a | b | c``; return every exit status, the last stdout, and every stderr."""
    full_env = {**os.environ, **(env or {})}
    procs: list[subprocess.Popen[bytes]] = []
    prev = subprocess.PIPE if stdin is not None else subprocess.DEVNULL
    for i, args in enumerate(commands):
        p = subprocess.Popen(
            _cmd(args),
            stdin=prev if i == 0 else procs[-1].stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        if i > 0 and procs[-1].stdout is not None:
            procs[-1].stdout.close()  # the next process owns the read end now (SIGPIPE semantics)
        procs.append(p)
    if stdin is not None and procs[0].stdin is not None:
        try:
            procs[0].stdin.write(stdin)
        except BrokenPipeError:
            pass
        procs[0].stdin.close()
    out, last_err = procs[-1].communicate(timeout=timeout)
    errs = []
    for p in procs[:-1]:
        p.wait(timeout=timeout)
        errs.append(p.stderr.read() if p.stderr else b"")
    errs.append(last_err)
    return [p.returncode for p in procs], out, errs


def count_frames(ffprobe: str, data_or_path: bytes | Path) -> tuple[int, int, int]:
    """(frames, width, height) as ffprobe -count_frames sees them."""
    args = [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0"]
    if isinstance(data_or_path, Path):
        proc = subprocess.run([*args, str(data_or_path)], capture_output=True, check=True)
    else:
        proc = subprocess.run([*args, "-"], input=data_or_path, capture_output=True, check=True)
    width, height, frames = proc.stdout.decode().strip().split(",")
    return int(frames), int(width), int(height)


def test_ffmpeg_y4m_pipe_into_invr_enc(ffmpeg: str, tiny_mp4: Path, tiny_frames: np.ndarray,
                                       tmp_path: Path) -> None:
    out = tmp_path / "from_pipe.invr"
    codes, _, errs = pipeline(
        [ffmpeg, "-v", "error", "-i", tiny_mp4, "-f", "yuv4mpegpipe", "-"],
        ["invr-enc", *FAST_ENC, "-", out],
    )
    assert codes == [0, 0], errs
    assert b"stdin: 32x32 yuv420p @ 25 fps" in errs[1]
    with invrcodec.open(out) as f:
        assert f.header.stream.frame_count == 6
        decoded = np.stack(list(f.decode()))
    assert min(psnr(a, b) for a, b in zip(decoded, tiny_frames)) > 15


def test_all_pipes_end_to_end(ffmpeg: str, ffprobe: str, tiny_mp4: Path, tmp_path: Path) -> None:
    """ffmpeg | invr-enc - - | invr-dec - - | ffmpeg -i - out.mkv: every .invr step on a pipe."""
    out = tmp_path / "round.mkv"
    codes, _, errs = pipeline(
        [ffmpeg, "-v", "error", "-i", tiny_mp4, "-frames:v", "4", "-f", "yuv4mpegpipe", "-"],
        ["invr-enc", *FAST_ENC, "-q", "-", "-"],
        ["invr-dec", *FAST_DEC, "-q", "-", "-"],
        [ffmpeg, "-v", "error", "-i", "-", "-c:v", "ffv1", out],
    )
    assert codes == [0, 0, 0, 0], errs
    assert count_frames(ffprobe, out) == (4, 32, 32)


def test_invr_dec_into_ffmpeg_null_and_ffprobe(ffmpeg: str, ffprobe: str, tiny_invr: Path) -> None:
    codes, _, errs = pipeline(
        ["invr-dec", *FAST_DEC, tiny_invr, "-"],
        [ffmpeg, "-hide_banner", "-nostats", "-i", "-", "-f", "null", "-"],
    )
    assert codes == [0, 0], errs
    assert _null_frames(errs[1]) == 6, errs[1]
    codes, y4m, errs = pipeline(["invr-dec", *FAST_DEC, "-q", tiny_invr, "-"])
    assert codes == [0]
    assert count_frames(ffprobe, y4m) == (6, 32, 32)


def _null_frames(log: bytes) -> int:
    found = re.findall(rb"frame=\s*(\d+)", log)
    return int(found[-1]) if found else -1


def test_invr_dec_into_ffplay(ffplay: str, tiny_invr: Path) -> None:
    codes, _, errs = pipeline(
        ["invr-dec", *FAST_DEC, "-q", tiny_invr, "-"],
        [ffplay, "-hide_banner", "-loglevel", "info", "-autoexit", "-vf", "showinfo", "-"],
        env=HEADLESS,
        timeout=120,
    )
    assert codes == [0, 0], errs
    shown = re.findall(rb"\] n:\s*(\d+)", errs[1])
    assert len(shown) == 6, errs[1][-2000:]
    assert b"s:32x32" in errs[1]


def test_rawvideo_into_ffmpeg(ffmpeg: str, tiny_invr: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.y4m"
    codes, _, errs = pipeline(
        ["invr-dec", *FAST_DEC, "-q", "-f", "rawvideo", "--pix-fmt", "rgb24", tiny_invr, "-"],
        [ffmpeg, "-v", "error", "-f", "rawvideo", "-pixel_format", "rgb24", "-video_size", "32x32",
         "-framerate", "25", "-i", "-", "-pix_fmt", "yuv444p", out],
    )
    assert codes == [0, 0], errs
    assert read_rgb(out).shape == (6, 32, 32, 3)


def test_reader_closing_the_pipe_is_quiet(tiny_invr: Path) -> None:
    codes, out, errs = pipeline(["invr-dec", *FAST_DEC, tiny_invr, "-"], ["head", "-c", "100"])
    assert len(out) == 100
    assert codes[0] in (0, 141), errs[0]
    assert b"error" not in errs[0] and b"Traceback" not in errs[0], errs[0]


def test_real_clip_through_ffmpeg(ffmpeg: str, ffprobe: str, shared_media: Path, tmp_path: Path) -> None:
    out = tmp_path / "carphone.invr"
    codes, _, errs = pipeline(
        [ffmpeg, "-v", "error", "-i", shared_media / "carphone_pristine.mp4", "-frames:v", "3",
         "-vf", "scale=44:36:flags=area", "-f", "yuv4mpegpipe", "-"],
        ["invr-enc", *FAST_ENC, "-", out],
    )
    assert codes == [0, 0], errs
    video = tmp_path / "carphone.mp4"
    codes, _, errs = pipeline(["invr-dec", *FAST_DEC, out, video])
    assert codes == [0], errs
    assert count_frames(ffprobe, video) == (3, 44, 36)
