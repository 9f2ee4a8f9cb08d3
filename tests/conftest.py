"""Shared fixtures: tiny synthetic clips made with PyAV and numpy, the installed console scripts, real clips.

Clips are made in the test (as PyAV's own tests do), small enough that an encode with ``--preset ultrafast``
takes seconds on two CPU cores. Real footage lives in ``../shared/media`` beside the project; tests that need
it skip with the reason when it is absent (a user's checkout), while CI has it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = ROOT.parent / "shared" / "media"
BIN = Path(sys.executable).parent
# CI sets INVR_STRICT=1: there, a missing ffmpeg/ffplay or ../shared/media fails the test instead of skipping
# it, so an install step that silently broke cannot turn the pipe and real-clip tests into skips.
STRICT = os.environ.get("INVR_STRICT") == "1"


def absent(reason: str) -> None:
    """Skip (a user's checkout) or, under INVR_STRICT=1 (CI), fail: something the test needs is missing."""
    if STRICT:
        pytest.fail(f"{reason} [INVR_STRICT=1]")
    pytest.skip(reason)

# Fast, deterministic settings for end-to-end encodes in tests: the fastest preset with a deliberately tiny
# network and few steps, on one thread (two torch threads on two busy cores are several times slower);
# seconds per encode, PSNR around 20 dB on the synthetic clips.
FAST_ENC = ["--preset", "ultrafast", "--steps", "60", "--hidden", "32", "--layers", "2", "--enc-dims", "8,8,4",
            "--device", "cpu", "--threads", "1", "--no-progress"]
FAST_DEC = ["--device", "cpu", "--threads", "1", "--no-progress"]


def synthetic_frames(width: int, height: int, frames: int, seed: int = 0) -> np.ndarray:
    """Smooth moving colour gradients, (T, H, W, 3) uint8: easy for a small network, not constant."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        r = 128 + 90 * np.sin(2 * np.pi * x / max(width, 2) + phase[0] + 0.3 * t)
        g = 128 + 90 * np.cos(2 * np.pi * y / max(height, 2) + phase[1] - 0.2 * t)
        b = 128 + 60 * np.sin(2 * np.pi * (x + y) / max(width + height, 2) + phase[2] + 0.1 * t)
        out[t] = np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)
    return out


def encode_to_bytes(frames: np.ndarray, config: object) -> bytes:
    """A whole .invr file of ``frames`` (T, H, W, 3) at 25 fps, encoded with an EncoderConfig, in memory."""
    import io

    import invrcodec
    from invrcodec.codec.encoder import Encoder
    from invrcodec.types import StreamInfo

    enc = Encoder(StreamInfo(frames.shape[2], frames.shape[1], 0), config)  # type: ignore[arg-type]
    out = io.BytesIO()
    with invrcodec.open(out, "w", header=enc.header) as f:
        for frame in frames:
            f.mux(enc.encode(frame))
        f.mux(enc.encode(None))
    return out.getvalue()


def write_clip(
    path: Path,
    frames: np.ndarray,
    *,
    fps: Fraction | int = 25,
    codec: str | None = None,
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """Write RGB ``frames`` to ``path`` with PyAV (format from the extension), optionally with a sine track."""
    ext = path.suffix.lower()
    fmt = {".y4m": "yuv4mpegpipe", ".mkv": "matroska", ".nut": "nut"}.get(ext)
    if codec is None:
        codec = {".y4m": "wrapped_avframe", ".mkv": "ffv1", ".nut": "ffv1", ".avi": "ffv1"}.get(ext, "libx264")
    if options is None and codec == "libx264":
        options = {"crf": "10", "preset": "ultrafast"}
    t, h, w, _ = frames.shape
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=Fraction(fps), options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=48000)
            astream.layout = "mono"
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if astream is not None:
            n = int(48000 * t / float(fps))
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)[None, :]
            aframe = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            aframe.sample_rate = 48000
            aframe.pts = 0
            for packet in astream.encode(aframe):
                container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 0.1) -> Path:
    """A file with one silent AAC track and no video (format from the extension: .m4a, .mka, ...)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, int(48000 * seconds)), np.float32), format="flt",
                                           layout="mono")
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def sample_script(name: str) -> ModuleType:
    """``samples/NAME.py`` as a module (the samples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "samples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def read_rgb(path: Path | str) -> np.ndarray:
    """Every frame of a video file as (T, H, W, 3) uint8 RGB, through PyAV."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: install the package (pip install -e .) so its console scripts exist")
    return path


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | None = None,
    timeout: float = 300,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command (first item a console-script name or a path), capturing stdout and stderr as bytes."""
    argv = [str(a) for a in args]
    if os.sep not in argv[0] and (BIN / argv[0]).exists():
        argv[0] = str(BIN / argv[0])
    full_env = dict(os.environ)
    full_env.pop("PYTHONWARNINGS", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        argv, input=input, capture_output=True, timeout=timeout, cwd=cwd, env=full_env, check=False
    )


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    for name in ("invr-enc", "invr-dec"):
        tool(name)
    return BIN


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        absent(f"{name} is not installed (tools/install.sh installs it; CI has it)")
    return str(path)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return _program("ffmpeg")


@pytest.fixture(scope="session")
def ffprobe() -> str:
    return _program("ffprobe")


@pytest.fixture(scope="session")
def ffplay() -> str:
    return _program("ffplay")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        absent(f"real clips not present ({SHARED_MEDIA} is absent; CI has it)")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def tiny_frames() -> np.ndarray:
    """The reference content of the tiny clips: 6 frames of 32x32."""
    return synthetic_frames(32, 32, 6)


@pytest.fixture(scope="session")
def tiny_y4m(clip_dir: Path, tiny_frames: np.ndarray) -> Path:
    return write_clip(clip_dir / "tiny.y4m", tiny_frames, pix_fmt="yuv444p")


@pytest.fixture(scope="session")
def tiny_mp4(clip_dir: Path, tiny_frames: np.ndarray) -> Path:
    return write_clip(clip_dir / "tiny.mp4", tiny_frames)


@pytest.fixture(scope="session")
def tiny_audio_mp4(clip_dir: Path, tiny_frames: np.ndarray) -> Path:
    return write_clip(clip_dir / "tiny_audio.mp4", tiny_frames, audio=True)


@pytest.fixture(scope="session")
def odd_mkv(clip_dir: Path) -> Path:
    """127x93: odd sizes must survive every path."""
    return write_clip(clip_dir / "odd.mkv", synthetic_frames(127, 93, 3, seed=1), pix_fmt="yuv420p")


@pytest.fixture(scope="session")
def make_clip(clip_dir: Path) -> Callable[..., Path]:
    """Factory: make_clip("name.ext", width, height, frames, **write_clip options)."""

    def make(name: str, width: int, height: int, frames: int, **kwargs: object) -> Path:
        path = clip_dir / name
        if not path.exists():
            write_clip(path, synthetic_frames(width, height, frames), **kwargs)  # type: ignore[arg-type]
        return path

    return make


@pytest.fixture(scope="session")
def _tiny_encode(bin_dir: Path, tiny_y4m: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("invr") / "tiny.invr"
    proc = run(["invr-enc", *FAST_ENC, tiny_y4m, out])
    if proc.returncode != 0:
        pytest.fail(f"invr-enc failed on the tiny clip: {proc.stderr.decode(errors='replace')}")
    return out, proc.stderr.decode(errors="replace")


@pytest.fixture(scope="session")
def tiny_invr(_tiny_encode: tuple[Path, str]) -> Path:
    """tiny.y4m (6 frames, 32x32) encoded once with FAST_ENC, shared by the decoding tests."""
    return _tiny_encode[0]


@pytest.fixture(scope="session")
def tiny_invr_log(_tiny_encode: tuple[Path, str]) -> str:
    """What invr-enc printed on stderr while making tiny_invr."""
    return _tiny_encode[1]
