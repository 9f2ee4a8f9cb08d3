"""invr-enc end to end through the installed console script: summary, ranges, odd sizes, audio, progress,
interruption. Encodes use a deliberately tiny network (FAST_ENC) so each takes seconds on two CPU cores."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import BIN, FAST_DEC, FAST_ENC, psnr, read_rgb, run

import invrcodec


def test_summary_and_file(tiny_invr: Path, tiny_invr_log: str) -> None:
    err = tiny_invr_log
    assert re.search(r"tiny\.y4m: 32x32 yuv444p @ 25 fps", err), err
    m = re.search(
        r"encoded (\d+) frames in (\d+) chunks, [\d.]+ s, [\d.]+ fps, (\d+) bytes, [\d.]+ kbit/s, [\d.]+ bpp", err
    )
    assert m, err
    assert int(m.group(1)) == 6
    assert int(m.group(3)) == tiny_invr.stat().st_size
    assert re.search(r"PSNR \(RGB\) mean [\d.]+ dB, min [\d.]+ dB, max [\d.]+ dB", err), err
    assert re.search(r"mean of the chunks' PSNRs in dB, weighted by frames; the PSNR of their pooled MSE is", err)
    assert "Traceback" not in err
    with invrcodec.open(tiny_invr) as f:
        assert (f.header.stream.width, f.header.stream.height, f.header.stream.frame_count) == (32, 32, 6)
        assert f.header.stream.pix_fmt == "yuv444p"
    assert sorted(p.name for p in tiny_invr.parent.iterdir()) == ["tiny.invr"]  # no temporary left


def test_quiet_prints_nothing(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.invr"
    proc = run(["invr-enc", *FAST_ENC, "-q", "--frames", "2", tiny_y4m, out])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b"" and proc.stdout == b""
    with invrcodec.open(out) as f:
        assert f.header.stream.frame_count == 2


def test_odd_size_seek_frames_and_decode_back(bin_dir: Path, odd_mkv: Path, tmp_path: Path) -> None:
    out = tmp_path / "odd.invr"
    proc = run(["invr-enc", *FAST_ENC, "--seek", "1", "--frames", "2", odd_mkv, out])
    assert proc.returncode == 0, proc.stderr
    with invrcodec.open(out) as f:
        s = f.header.stream
        assert (s.width, s.height, s.frame_count) == (127, 93, 2)
    for ext in (".mp4", ".y4m"):
        video = tmp_path / f"odd{ext}"
        proc = run(["invr-dec", *FAST_DEC, "-q", out, video])
        assert proc.returncode == 0, proc.stderr
        frames = read_rgb(video)
        assert frames.shape == (2, 93, 127, 3), ext
    source = read_rgb(odd_mkv)[1:3]
    assert min(psnr(a, b) for a, b in zip(source, frames)) > 15


def test_audio_is_reported_and_progress_lines(bin_dir: Path, tiny_audio_mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.invr"
    proc = run(["invr-enc", *FAST_ENC, "--frames", "3", "--progress", "-", tiny_audio_mp4, out])
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "stream #1 (audio, aac): 48000 Hz, mono: kept as it is (stream copy)" in err
    assert re.search(r"audio: stream #1 \(audio, aac\) kept by stream copy: aac, 48000 Hz, mono, \d+ packets",
                     err)
    assert "invr-enc: warning:" not in err
    with invrcodec.open(out) as f:
        assert f.audio is not None and f.audio.codec == "aac" and list(f.demux_audio())
    lines = proc.stdout.decode().splitlines()
    assert lines[-1] == "progress=end"
    keys = {ln.split("=", 1)[0] for ln in lines}
    assert {"chunk", "step", "steps", "psnr", "fps", "eta", "frames_done", "progress"} <= keys
    assert "frames_done=3" in lines


def test_parallel_chunks_trains_several_at_once(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.invr"
    proc = run(["invr-enc", *FAST_ENC, "--chunk-frames", "2", "--keyint", "1", "--parallel-chunks", "2",
                "--progress", "-", tiny_y4m, out])
    assert proc.returncode == 0, proc.stderr
    assert "training 2 chunks at once on cpu" in proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert "chunks_training=2" in lines and "chunk=2" in lines  # chunks 0-1 together, then chunk 2 (flush)
    with invrcodec.open(out) as f:
        assert [(e.first_frame, e.frame_count) for e in f.index] == [(0, 2), (2, 2), (4, 2)]
    proc = run(["invr-enc", *FAST_ENC, "--parallel-chunks", "-1", tiny_y4m, tmp_path / "bad.invr"])
    assert proc.returncode == 2 and b"--parallel-chunks" in proc.stderr
    assert not (tmp_path / "bad.invr").exists()


def test_crop_and_scale(bin_dir: Path, make_clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = make_clip("wide.mp4", 96, 48, 2)
    out = tmp_path / "s.invr"
    proc = run(["invr-enc", *FAST_ENC, "--crop-square", "--scale", "24x24", src, out])
    assert proc.returncode == 0, proc.stderr
    assert "encoding 24x24" in proc.stderr.decode()
    with invrcodec.open(out) as f:
        assert (f.header.stream.width, f.header.stream.height) == (24, 24)


def test_encode_to_stdout_then_decode(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    proc = run(["invr-enc", *FAST_ENC, "--frames", "2", tiny_y4m, "-"])
    assert proc.returncode == 0, proc.stderr
    data = proc.stdout
    assert m_bytes(proc.stderr) == len(data)
    path = tmp_path / "piped.invr"
    path.write_bytes(data)
    with invrcodec.open(path) as f:
        assert sum(e.frame_count for e in f.index) == 2


def m_bytes(stderr: bytes) -> int:
    m = re.search(rb", (\d+) bytes,", stderr)
    assert m, stderr
    return int(m.group(1))


def _ignore_signal(sig: int) -> Callable[[], None]:
    return lambda: signal.signal(sig, signal.SIG_IGN)  # type: ignore[func-returns-value]


# ignored_on_entry: started as a background job of a non-interactive shell (as CI may run us), a process
# inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own.
@pytest.mark.parametrize("ignored_on_entry", [False, True])
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_leaves_no_file(bin_dir: Path, tiny_y4m: Path, tmp_path: Path, sig: int, code: int,
                                  ignored_on_entry: bool) -> None:
    out = tmp_path / "int.invr"
    cmd = [str(BIN / "invr-enc"), "--preset", "ultrafast", "--steps", "100000", "--device", "cpu", "--threads", "1",
           "--progress", str(tmp_path / "progress.txt"), str(tiny_y4m), str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_ignore_signal(sig) if ignored_on_entry else None)
    deadline = time.monotonic() + 240
    progress = tmp_path / "progress.txt"
    while time.monotonic() < deadline:  # wait until training runs (a temporary output exists by then)
        if progress.exists() and "step=" in progress.read_text():
            break
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()  # do not leave a 100000-step encode running after the failure
        proc.communicate()
        raise
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.txt"]


def test_real_clip_with_audio(bin_dir: Path, shared_media: Path, tmp_path: Path) -> None:
    out = tmp_path / "bbb.invr"
    proc = run(["invr-enc", *FAST_ENC, "--frames", "2", "--crop-square", "--scale", "32x32",
                shared_media / "bigbuckbunny.mp4", out])
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "1280x720 yuv420p @ 25 fps" in err
    assert "stream #1 (audio, aac): 48000 Hz, 5.1: kept as it is (stream copy)" in err
    with invrcodec.open(out) as f:
        assert (f.header.stream.width, f.header.stream.height, f.header.stream.frame_count) == (32, 32, 2)
        assert f.audio is not None and (f.audio.codec, f.audio.channels) == ("aac", 6)


def test_real_clip_carphone(bin_dir: Path, shared_media: Path, tmp_path: Path) -> None:
    out = tmp_path / "carphone.invr"
    proc = run(["invr-enc", *FAST_ENC, "--seek", "100", "--frames", "3", "--scale", "44x36",
                shared_media / "carphone_pristine.mp4", out])
    assert proc.returncode == 0, proc.stderr
    assert "176x144 yuv420p @ 30000/1001 fps, 3 frames" in proc.stderr.decode()
    with invrcodec.open(out) as f:
        s = f.header.stream
        assert (s.width, s.height, s.frame_count, s.frame_rate) == (44, 36, 3, Fraction(30000, 1001))


def test_offered_names_are_the_presets() -> None:
    """invr-enc offers exactly the presets and variants the encoder defines, in their order, and its --help
    does not import torch (the names come from invrcodec.choices)."""
    from invrcodec import choices
    from invrcodec.codec import presets
    from invrcodec.cli.enc import command

    assert tuple(presets.PRESETS) == choices.PRESET_NAMES
    assert tuple(presets.VARIANTS) == choices.VARIANT_NAMES
    params = {p.name: p for p in command.params}
    assert tuple(params["preset"].type.choices) == choices.PRESET_NAMES  # type: ignore[attr-defined]
    assert tuple(params["variant"].type.choices) == choices.VARIANT_NAMES  # type: ignore[attr-defined]
    assert (params["preset"].default, params["variant"].default) == (choices.DEFAULT_PRESET, choices.DEFAULT_VARIANT)
    code = "import sys, invrcodec.cli.enc, invrcodec.cli.probe; sys.exit(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0, "torch imported"
