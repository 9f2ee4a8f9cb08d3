"""A source's audio through invr-enc and invr-dec (issue 27), with the installed console scripts, PyAV,
ffmpeg, ffprobe and ffplay: the packets' payloads come out byte for byte, the sound starts where it started
against the picture (within one frame), also after --seek; -an; outputs that cannot carry the audio or its
codec say so once; several audio streams, audio starting before or after the video, a resume and Ray keep
working; crafted audio records are one line from both tools. Encodes are 32x32 with a tiny network, a few
seconds each."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from conftest import BIN, FAST_DEC, absent, run, synthetic_frames
from test_cli_pipes import HEADLESS, pipeline

import invrcodec
from invrcodec.codec.resume import Journal, journal_path

ENC = ["--preset", "ultrafast", "--steps", "30", "--hidden", "16", "--layers", "2", "--enc-dims", "6,6,4",
       "--device", "cpu", "--threads", "1", "--no-progress"]
REAL = {  # clip: (frames encoded, --seek and --frames of the decode after a seek)
    "bigbuckbunny.mp4": (50, 23, 20),
    "more/chaplin_360p.mp4": (60, 31, 17),
}


# --- what the files hold, through PyAV and ffprobe ---------------------------------------------------------


def audio_packets(path: Path) -> tuple[list[bytes], list[Fraction], list[Fraction]]:
    """Payloads, start times and durations (s) of the first audio stream's packets, in demux order."""
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        got = [(bytes(p), Fraction(p.pts) * p.time_base, Fraction(p.duration or 0) * p.time_base)
               for p in c.demux(a) if p.size]
    return [g[0] for g in got], [g[1] for g in got], [g[2] for g in got]


def first_frame_time(path: Path, index: int = 0) -> Fraction:
    """The time (s) of a source's video frame ``index`` in decode order, as invr-enc counts frames."""
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == index:
                return Fraction(frame.pts) * frame.time_base
    raise AssertionError(f"{path} has no frame {index}")


def starts(ffprobe: str, path: Path) -> dict[str, float]:
    """ffprobe's start_time of the first video and the first audio stream."""
    proc = subprocess.run([ffprobe, "-v", "error", "-show_entries", "stream=codec_type,start_time", "-of",
                           "json", str(path)], capture_output=True, check=True)
    out: dict[str, float] = {}
    for s in json.loads(proc.stdout)["streams"]:
        out.setdefault(s["codec_type"], float(s["start_time"]))
    return out


def expected_span(src: Path, first: int, count: int | None, rate: Fraction, from_start: bool
                  ) -> tuple[list[bytes], Fraction]:
    """The source's audio payloads that go with frames [first, first + count) (spec "Audio"), and the start of
    the first of them against frame ``first``."""
    payloads, times, durations = audio_packets(src)
    t0 = first_frame_time(src)
    lo, hi = t0 + first / rate, None if count is None else t0 + (first + count) / rate
    keep = [i for i, (t, d) in enumerate(zip(times, durations))
            if (hi is None or t < hi) and (from_start or (t + d > lo if d else t >= lo))]
    return [payloads[i] for i in keep], times[keep[0]] - lo


def check_output(ffprobe: str, out: Path, payloads: list[bytes], offset: Fraction,
                 rate: Fraction) -> dict[str, Any]:
    """The output's audio is ``payloads``, byte for byte, and starts ``offset`` s from its first frame, within
    one frame; and so within one frame of the picture. What was measured, for the report."""
    got, _, _ = audio_packets(out)
    assert got == payloads, (len(got), len(payloads))
    s = starts(ffprobe, out)
    frame = float(1 / rate)
    measured = s["audio"] - s["video"]
    assert abs(measured - float(offset)) < frame, (s, float(offset))
    assert abs(measured) < frame, s
    return {"packets": len(got), "audio_minus_video_s": round(measured, 6),
            "expected_s": round(float(offset), 6)}


# --- the two real clips -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(REAL))
def real(request: pytest.FixtureRequest, shared_media: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, Path, str]:
    """A real clip's first frames encoded at 32x32 with its audio: (source, .invr, invr-enc's stderr)."""
    src = shared_media / request.param
    out = tmp_path_factory.mktemp("real") / (src.stem + ".invr")
    frames = REAL[request.param][0]
    proc = run(["invr-enc", *ENC, "--crop-square", "--scale", "32x32", "--frames", str(frames), src, out])
    assert proc.returncode == 0, proc.stderr.decode()
    return src, out, proc.stderr.decode()


def test_real_clip_keeps_its_audio(real: tuple[Path, Path, str], ffprobe: str, tmp_path: Path) -> None:
    src, invr, err = real
    frames, seek, count = REAL[f"{src.parent.name}/{src.name}" if src.parent.name == "more" else src.name]
    with invrcodec.open(invr) as f:
        rate, a = f.header.stream.frame_rate, f.audio
        assert a is not None and f.version == (2, 1)
        stored = [p.data for p in f.demux_audio()]
    with av.open(str(src)) as c:
        cc = c.streams.audio[0].codec_context
        assert (a.codec, a.sample_rate, a.channels) == (cc.codec.canonical_name, cc.sample_rate, cc.channels)
        assert a.extradata == bytes(cc.extradata or b"")
    payloads, offset = expected_span(src, 0, frames, rate, from_start=True)
    assert stored == payloads
    assert re.search(rf"audio: stream #1 \(audio, {a.codec}\) kept by stream copy: {a.codec}, "
                     rf"{a.sample_rate} Hz, {re.escape(a.layout_text)}, {len(payloads)} packets", err), err
    probe = run(["invr-probe", "-of", "json", "-show_streams", invr])
    streams = json.loads(probe.stdout)["streams"]
    assert [s["codec_type"] for s in streams] == ["video", "audio"]
    assert (streams[1]["codec_name"], streams[1]["nb_frames"]) == (a.codec, str(len(payloads)))
    assert f"Stream #0:1: Audio: {a.codec}, {a.sample_rate} Hz" in run(["invr-probe", invr]).stdout.decode()

    whole = tmp_path / "whole.mkv"
    proc = run(["invr-dec", *FAST_DEC, invr, whole])
    assert proc.returncode == 0 and f"audio stream 0 ({a.describe()}): stream copy" in proc.stderr.decode()
    measured = {"whole": check_output(ffprobe, whole, payloads, offset, rate)}

    cut = tmp_path / "seek.mkv"
    proc = run(["invr-dec", *FAST_DEC, "--seek", str(seek), "--frames", str(count), invr, cut])
    assert proc.returncode == 0, proc.stderr.decode()
    payloads, offset = expected_span(src, seek, count, rate, from_start=False)
    measured["seek"] = check_output(ffprobe, cut, payloads, offset, rate)
    print(f"{src.name}: {measured}")  # the figures of the report (pytest -s shows them)


def test_a_seek_in_the_encoder_cuts_the_audio_to_its_frames(shared_media: Path, ffprobe: str, tmp_path: Path
                                                            ) -> None:
    src = shared_media / "more" / "chaplin_360p.mp4"
    out, mkv = tmp_path / "cut.invr", tmp_path / "cut.mkv"
    proc = run(["invr-enc", *ENC, "--scale", "32x32", "--seek", "40", "--frames", "12", src, out])
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert re.search(r"audio: \d+ packets before the first frame's time left out \(--seek\)", err), err
    assert re.search(r"audio: \d+ packets after the last frame's time left out \(--frames\)", err), err
    assert run(["invr-dec", *FAST_DEC, out, mkv]).returncode == 0
    payloads, offset = expected_span(src, 40, 12, Fraction(25), from_start=False)
    check_output(ffprobe, mkv, payloads, offset, Fraction(25))


@pytest.mark.parametrize("ext", [".mp4", ".mov"])
def test_mp4_and_mov_take_mp3_by_stream_copy(real: tuple[Path, Path, str], ffprobe: str, tmp_path: Path,
                                             ext: str) -> None:
    src, invr, _ = real
    out = tmp_path / f"copy{ext}"
    proc = run(["invr-dec", *FAST_DEC, invr, out])
    assert proc.returncode == 0 and b"stream copy" in proc.stderr, proc.stderr.decode()
    with invrcodec.open(invr) as f:
        payloads = [p.data for p in f.demux_audio()]
    assert audio_packets(out)[0] == payloads


def test_webm_re_encodes_and_says_so(real: tuple[Path, Path, str], tmp_path: Path) -> None:
    src, invr, _ = real
    out = tmp_path / "a.webm"
    proc = run(["invr-dec", *FAST_DEC, invr, out])
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    lines = [ln for ln in err.splitlines() if "audio stream 0" in ln]
    assert len(lines) == 1 and lines[0].startswith("invr-dec: warning: ") and \
        re.search(r"re-encoded to opus \(webm does not take (aac|mp3)\)", lines[0]), err
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "opus"
        assert sum(f.samples for f in c.decode(audio=0)) > 0.9 * 48000 * float(c.duration or 0) / 1e6


def test_y4m_and_the_ffplay_pipe_say_it_once(real: tuple[Path, Path, str], ffplay: str,
                                              tmp_path: Path) -> None:
    _, invr, _ = real
    proc = run(["invr-dec", *FAST_DEC, invr, tmp_path / "a.y4m"])
    assert proc.returncode == 0
    assert proc.stderr.decode().count("left out (Y4M carries no audio)") == 1
    codes, _, errs = pipeline(["invr-dec", *FAST_DEC, "--frames", "5", invr, "-"],
                              [ffplay, "-hide_banner", "-loglevel", "error", "-autoexit", "-"], env=HEADLESS,
                              timeout=120)
    assert codes == [0, 0], errs
    assert errs[0].decode().count("left out (Y4M carries no audio)") == 1
    assert b"warning" not in errs[0] and b"error" not in errs[0]
    proc = run(["invr-dec", *FAST_DEC, "-f", "rawvideo", invr, tmp_path / "a.rgb"])
    assert proc.returncode == 0 and proc.stderr.decode().count("left out (raw video carries no audio)") == 1


def test_an_leaves_the_audio_out(real: tuple[Path, Path, str], shared_media: Path, tmp_path: Path) -> None:
    src, invr, _ = real
    out = tmp_path / "an.mkv"
    proc = run(["invr-dec", *FAST_DEC, "-an", invr, out])
    assert proc.returncode == 0 and "audio left out (-an)" in proc.stderr.decode()
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]
    silent = tmp_path / "an.invr"
    proc = run(["invr-enc", *ENC, "-an", "--scale", "32x32", "--frames", "3", src, silent])
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "stream #1 (audio" in err and "left out (-an)" in err
    assert "audio: none kept (-an)" in err and "warning" not in err
    with invrcodec.open(silent) as f:
        assert f.audio is None and f.version == (2, 0)


def test_stdout_encode_interleaves_and_a_pipe_decodes_it(real: tuple[Path, Path, str], ffprobe: str,
                                                        tmp_path: Path) -> None:
    """invr-enc to stdout muxes the audio as the chunks come (with 10-frame chunks: many records between
    them); invr-dec reads it from a pipe, cut by --seek and --frames."""
    src, _, _ = real
    codes, data, errs = pipeline(["invr-enc", *ENC, "--scale", "32x32", "--chunk-frames", "10", "--frames",
                                  "30", src, "-"])
    assert codes == [0], errs
    with invrcodec.open(io.BytesIO(data)) as f:
        index, audio = f.index, f.audio_index
        rate = f.header.stream.frame_rate
        tb = f.audio.time_base  # type: ignore[union-attr]
    ends = [Fraction(e.first_frame + e.frame_count) / rate for e in index]
    for e in audio:  # each record sits before the chunk whose time it starts in
        before = [i for i, c in enumerate(index) if c.offset > e.offset]
        if before:
            assert e.start * tb < ends[before[0]] and (before[0] == 0 or e.start * tb >= ends[before[0] - 1])
    out = tmp_path / "pipe.mkv"
    proc = run(["invr-dec", *FAST_DEC, "--seek", "12", "--frames", "9", "-", out], input=data)
    assert proc.returncode == 0, proc.stderr.decode()
    payloads, offset = expected_span(src, 12, 9, rate, from_start=False)
    check_output(ffprobe, out, payloads, offset, rate)


# --- synthetic sources: several streams, offsets, codecs an output does not take ---------------------------


def make_source(path: Path, frames: int = 8, fps: int = 25, audio: list[tuple[str, float]] = (("aac", 0.0),),
                video_start: float = 0.0, subtitle: bool = False) -> Path:
    """A 32x32 clip with audio streams (codec, start in s): a 440 Hz tone as long as the video (mkv: ffv1)."""
    rgb = synthetic_frames(32, 32, frames)
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=fps)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv444p"
        outs = []
        for codec, _ in audio:
            s = c.add_stream(codec, rate=48000)
            s.layout = "mono"
            outs.append(s)
        if subtitle:
            c.add_stream("ass")
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rgb[i], format="rgb24").reformat(format="yuv444p")
            frame.pts = i + round(video_start * fps)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        n = 48000 * frames // fps
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)[None, :]
        for s, (_, start) in zip(outs, audio):
            fmt = s.codec_context.format.name
            samples = tone if fmt in ("flt", "fltp") else (tone * 32767).astype(np.int16)
            af = av.AudioFrame.from_ndarray(samples, format={"fltp": "fltp", "flt": "flt"}.get(fmt, "s16"),
                                            layout="mono")
            af.sample_rate, af.pts, af.time_base = 48000, round(start * 48000), Fraction(1, 48000)
            c.mux(s.encode(af))
            c.mux(s.encode(None))
    return path


def encode(src: Path, out: Path, *extra: str) -> str:
    proc = run(["invr-enc", *ENC, *extra, src, out])
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stderr.decode()


def test_several_audio_streams_and_a_subtitle_each_get_a_line(tmp_path: Path) -> None:
    src = make_source(tmp_path / "multi.mkv", audio=[("aac", 0.0), ("mp2", 0.0)], subtitle=True)
    err = encode(src, tmp_path / "multi.invr")
    assert "stream #1 (audio, aac): 48000 Hz, mono: kept as it is (stream copy)" in err
    assert "invr-enc: warning: " in err
    assert "stream #2 (audio, mp2) left out (invr-enc keeps the first audio stream only)" in err
    assert "stream #3 (subtitle, ass) left out (INVR stores video and one audio stream)" in err
    with invrcodec.open(tmp_path / "multi.invr") as f:
        assert [a.codec for a in f.audio_streams] == ["aac"]


@pytest.mark.parametrize(("audio_start", "video_start", "says"), [
    (0.2, 0.0, "audio: starts 0.179 s after the first frame"),  # the encoder's priming: 0.2 - 1024/48000 s
    (0.0, 0.12, "audio: starts 0.141 s before the first frame"),  # 0.12 s + the priming
])
def test_audio_that_starts_after_or_before_the_video(tmp_path: Path, ffprobe: str, audio_start: float,
                                                     video_start: float, says: str) -> None:
    src = make_source(tmp_path / "off.mkv", frames=10, audio=[("aac", audio_start)], video_start=video_start)
    err = encode(src, tmp_path / "off.invr")
    assert says in err, err
    out = tmp_path / "off.mkv.mkv"
    assert run(["invr-dec", *FAST_DEC, tmp_path / "off.invr", out]).returncode == 0
    payloads, offset = expected_span(src, 0, None, Fraction(25), from_start=True)
    assert audio_packets(out)[0] == payloads
    s = starts(ffprobe, out)
    assert abs((s["audio"] - s["video"]) - float(offset)) < 1 / 25, (s, float(offset))


def test_codecs_an_output_cannot_take(tmp_path: Path, ffmpeg: str) -> None:
    """DTS: PyAV has no encoder for it, so it cannot set up a copied stream: re-encoded, said once. PCM goes
    into mkv as it is."""
    src = tmp_path / "dts.mkv"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=25", "-f", "lavfi",
                    "-i", "sine=sample_rate=48000", "-t", "0.4", "-c:v", "ffv1", "-c:a", "dca", "-strict",
                    "-2", str(src)], check=True)
    encode(src, tmp_path / "dts.invr")
    proc = run(["invr-dec", *FAST_DEC, tmp_path / "dts.invr", tmp_path / "dts-out.mkv"])
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert err.count("audio stream 0 (dts, 48000 Hz, mono): re-encoded to ac3 (PyAV can set up a copied "
                     "stream only of a codec it can encode, and has no dts encoder)") == 1, err
    with av.open(str(tmp_path / "dts-out.mkv")) as c:
        assert c.streams.audio[0].codec_context.name == "ac3"
    pcm = make_source(tmp_path / "pcm.mkv", audio=[("pcm_s16le", 0.0)])
    encode(pcm, tmp_path / "pcm.invr")
    proc = run(["invr-dec", *FAST_DEC, tmp_path / "pcm.invr", tmp_path / "pcm-out.mkv"])
    assert proc.returncode == 0
    assert re.search(r"\(pcm_s16le, 48000 Hz, [^)]+\): stream copy", proc.stderr.decode())
    assert audio_packets(tmp_path / "pcm-out.mkv")[0] == audio_packets(pcm)[0]


# --- resume, Ray, parallel chunks: the audio is written at the end, from the source ------------------------

SETTINGS = [*ENC, "--chunk-frames", "4", "--keyint", "3", "--steps", "150"]


@pytest.fixture(scope="module")
def sound_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("sound") / "sound.mkv", frames=16)


@pytest.fixture(scope="module")
def sound_reference(sound_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("sref") / "ref.invr"
    proc = run(["invr-enc", *SETTINGS, sound_clip, out])
    assert proc.returncode == 0, proc.stderr.decode()
    with invrcodec.open(out) as f:
        assert f.audio is not None and len(list(f.demux_audio())) == len(audio_packets(sound_clip)[0])
    return out.read_bytes()


def test_resume_writes_the_bytes_of_an_uninterrupted_encode(sound_clip: Path, sound_reference: bytes,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out.invr"
    part = Path(journal_path(str(out)))
    proc = subprocess.Popen([str(BIN / "invr-enc"), *SETTINGS, str(sound_clip), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if part.exists() and len(Journal.read(str(part)).entries) >= 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the encode finished before two chunks were seen in the journal")
    assert not out.exists() and part.exists()
    proc2 = run(["invr-enc", *SETTINGS, "--resume", sound_clip, out])
    assert proc2.returncode == 0, proc2.stderr.decode()
    assert out.read_bytes() == sound_reference
    assert "kept from the interrupted encode" in proc2.stderr.decode()


def test_ray_and_parallel_chunks_keep_the_audio(sound_clip: Path, sound_reference: bytes,
                                                tmp_path: Path) -> None:
    with invrcodec.open(io.BytesIO(sound_reference)) as f:
        reference_audio = list(f.demux_audio())
    out = tmp_path / "parallel.invr"
    proc = run(["invr-enc", *SETTINGS, "--parallel-chunks", "2", sound_clip, out])
    assert proc.returncode == 0, proc.stderr.decode()
    with invrcodec.open(out) as f:
        assert list(f.demux_audio()) == reference_audio
    try:
        import ray  # noqa: F401
    except ImportError:
        absent("ray is not installed (tools/install.sh installs it)")
    out = tmp_path / "ray.invr"
    proc = run(["invr-enc", *SETTINGS, "--ray", "local", sound_clip, out], timeout=900)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_bytes() == sound_reference


# --- crafted audio records: one line from each tool ---------------------------------------------------------


def test_crafted_audio_records_are_one_line_from_both_tools(tmp_path: Path, capfd: pytest.CaptureFixture[str]
                                                            ) -> None:
    from test_format_audio import CRAFTED, crafted, fuzz

    from invrcodec.cli import common, dec, probe

    for name, change, on_file, _ in CRAFTED:
        path = tmp_path / f"{name.replace(' ', '_')}.invr"
        path.write_bytes(crafted(change))
        code, err = fuzz._run_tool(lambda: probe.main.main([str(path)], standalone_mode=False))
        lines = err.splitlines()
        assert (code, len(lines)) == (1, 1), (name, err)
        assert lines[0].startswith(f"invr-probe: error: {path}: "), (name, err)
        assert on_file in lines[0], (name, lines[0])
        for out in ("out.mkv", "out.y4m"):  # the audio records of the span are checked whatever the output
            argv = ["-y", "--no-progress", str(path), str(tmp_path / out)]
            code, err = fuzz._run_tool(lambda: common.run_main(dec.command, "invr-dec", argv))
            lines = err.splitlines()
            assert (code, len(lines)) == (1, 1), (name, err)
            assert lines[0].startswith(f"invr-dec: error: {path}: "), (name, err)
            assert on_file in lines[0] and not (tmp_path / out).exists(), (name, lines[0])
    assert capfd.readouterr().out == ""


def test_probe_and_dec_of_the_golden_audio_file(tmp_path: Path, ffprobe: str) -> None:
    golden = Path(__file__).resolve().parents[1] / "samples" / "tiny-audio.invr"
    text = run(["invr-probe", golden]).stdout.decode()
    assert "Stream #0:1: Audio: aac, 8000 Hz, mono" in text and "4 packets from -0.128 s to 0.300 s" in text
    with invrcodec.open(golden) as f:
        stored = [p.data for p in f.demux_audio()]
    for out in (tmp_path / "golden.mp4", tmp_path / "golden.mkv"):
        assert run(["invr-dec", *FAST_DEC, golden, out]).returncode == 0
        assert audio_packets(out)[0] == stored
    s = starts(ffprobe, out)  # (MP4 says the priming with an edit list: both streams start at 0 there)
    assert abs((s["audio"] - s["video"]) + 0.128) < 1 / 30, s  # the tone's priming, 1024 / 8000 s early
    fast = tmp_path / "golden60.mkv"  # --fps renders other instants and leaves the sound where it was
    proc = run(["invr-dec", *FAST_DEC, "--fps", "60", golden, fast])
    assert proc.returncode == 0 and "decoded 9 frames" in proc.stderr.decode(), proc.stderr.decode()
    assert audio_packets(fast)[0] == stored
    s = starts(ffprobe, fast)
    assert abs((s["audio"] - s["video"]) + 0.128) < 1 / 60, s


def test_a_newer_minor_that_fails_is_still_one_line(tmp_path: Path) -> None:
    """The reader's note about a newer minor version is held back with invr-dec's other information, so that
    the error after it is the one line (found by tools/fuzz.py: seed 5143)."""
    from test_format_audio import crafted, fuzz

    from invrcodec.cli import common, dec

    def change(m: Any) -> None:
        m.minor = 65535
        m.audio_index = False

    path = tmp_path / "newer.invr"
    path.write_bytes(crafted(change))
    argv = ["-y", "--no-progress", str(path), str(tmp_path / "out.mkv")]
    code, err = fuzz._run_tool(lambda: common.run_main(dec.command, "invr-dec", argv))
    expected = f"invr-dec: error: {path}: audio index: none after the last chunk (byte 3111)"
    assert code == 1 and err.splitlines() == [expected], err
