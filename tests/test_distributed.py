"""Encodes that outgrow one process (issue 12): Ray gives the bytes of an in-process encode, a killed Ray worker
costs a retry and nothing else, and an encode killed with SIGKILL resumes to the same bytes without training
its finished chunks again.

Every encode here codes the same 16-frame clip as 4 chunks (keyint 3: key, P, P, key), so the Ray cluster
has two GOPs to run side by side and a resume after two chunks starts on a P-chunk.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN, FAST_ENC, absent, run, synthetic_frames, write_clip

import invrcodec
from invrcodec.codec.resume import Journal, journal_path
from invrcodec.types import Prediction

SETTINGS = [*FAST_ENC, "--chunk-frames", "4", "--keyint", "3", "--steps", "200"]
TRAINED = re.compile(r"^chunk (\d+) \((?:key|P)\)", re.MULTILINE)


def _run_acting(args: list[str], act: Callable[[subprocess.Popen[bytes]], bool], poll: float,
                wait: float) -> tuple[subprocess.Popen[bytes], bytes]:
    """Start ``invr-enc SETTINGS args`` and call ``act`` on it every ``poll`` seconds until it returns True
    (at most 180 s) or the encode ends; then wait for the end (at most ``wait`` s). The process and its
    stderr; it never outlives the call."""
    proc = subprocess.Popen([str(BIN / "invr-enc"), *SETTINGS, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None and not act(proc):
            time.sleep(poll)
        _, err = proc.communicate(timeout=wait)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc, err


@pytest.fixture(scope="module")
def clip(make_clip) -> Path:  # type: ignore[no-untyped-def]
    return make_clip("dist.y4m", 32, 32, 16, pix_fmt="yuv444p")


@pytest.fixture(scope="module")
def reference(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of an uninterrupted in-process encode."""
    out = tmp_path_factory.mktemp("ref") / "ref.invr"
    proc = run(["invr-enc", *SETTINGS, clip, out])
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(map(int, TRAINED.findall(proc.stderr.decode()))) == [0, 1, 2, 3]
    return out.read_bytes()


@pytest.fixture(scope="module")
def ray_installed() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        absent("ray is not installed (tools/install.sh installs it)")


def _children(pid: int) -> set[int]:
    """Every process descended from ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_ray_gives_the_bytes_of_an_in_process_encode(ray_installed: None, clip: Path, reference: bytes,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "ray.invr"
    proc = run(["invr-enc", *SETTINGS, "--ray", "local", clip, out], timeout=900)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert out.read_bytes() == reference
    assert sorted(map(int, TRAINED.findall(err))) == [0, 1, 2, 3]
    assert "ray worker" in err  # the chunks were trained by Ray's workers, not here
    assert not (tmp_path / "ray.invr.part").exists()


def test_ray_gives_the_bytes_of_an_in_process_tiled_encode(ray_installed: None, clip: Path,
                                                           tmp_path: Path) -> None:
    tiled = ["--tile", "8x16"]  # a GOP job's reference is then every tile's weights
    whole, out = tmp_path / "whole.invr", tmp_path / "ray.invr"
    assert run(["invr-enc", *SETTINGS, *tiled, clip, whole]).returncode == 0
    proc = run(["invr-enc", *SETTINGS, *tiled, "--ray", "local", clip, out], timeout=900)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_bytes() == whole.read_bytes()
    # a task per batch of tiles of one area size: 8x16 tiles of the 32x32 frame (overlap 2) have areas of 10x18
    # (first and last column) and 12x18
    assert "8 tiles in 2 ray tasks" in proc.stderr.decode()


def test_a_killed_ray_worker_is_retried(ray_installed: None, clip: Path, reference: bytes,
                                        tmp_path: Path) -> None:
    out = tmp_path / "killed.invr"
    killed: list[int] = []

    def kill_a_worker(proc: subprocess.Popen[bytes]) -> bool:
        for pid in _children(proc.pid):
            if _title(pid).startswith("ray::invr_train_chunk"):  # Ray titles a worker by its task
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return True
        return False

    proc, err = _run_acting(["--ray", "local", str(clip), str(out)], kill_a_worker, 0.02, wait=900)
    assert killed, "no Ray worker was seen training a chunk"
    assert proc.returncode == 0, err.decode()
    assert out.read_bytes() == reference


@pytest.fixture(scope="module")
def interrupted(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A journal left by ``invr-enc`` killed with SIGKILL once its second chunk was durable; its chunk count."""
    return _killed_after_two_chunks(clip, tmp_path_factory.mktemp("killed") / "out.invr", [])


def _killed_after_two_chunks(clip: Path, out: Path, extra: list[str]) -> tuple[Path, int]:
    part = Path(journal_path(str(out)))

    def kill_at_two_chunks(proc: subprocess.Popen[bytes]) -> bool:
        if part.exists() and len(Journal.read(str(part)).entries) >= 2:
            proc.send_signal(signal.SIGKILL)
            return True
        return False

    proc, err = _run_acting([*extra, str(clip), str(out)], kill_at_two_chunks, 0.01, wait=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    kept = len(Journal.read(str(part)).entries)
    assert 2 <= kept < 4 and not out.exists()
    return out, kept


def test_resume_after_sigkill_trains_only_the_rest(clip: Path, reference: bytes, interrupted: tuple[Path, int],
                                                   tmp_path: Path) -> None:
    original, kept = interrupted
    out = tmp_path / "out.invr"
    shutil.copy(journal_path(str(original)), journal_path(str(out)))
    proc = run(["invr-enc", *SETTINGS, "-v", "--resume", clip, out])
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert out.read_bytes() == reference
    assert sorted(map(int, TRAINED.findall(err))) == list(range(kept, 4))
    assert re.findall(r"^chunk (\d+): kept from", err, re.MULTILINE) == [str(i) for i in range(kept)]
    assert not Path(journal_path(str(out))).exists()


def test_a_tiled_encode_resumes_to_its_bytes(clip: Path, tmp_path: Path) -> None:
    # Four 16x16 tiles: the resume starts on a P-chunk, whose reference is every tile's reconstruction.
    tiled = ["--tile", "16x16"]
    whole = tmp_path / "whole.invr"
    assert run(["invr-enc", *SETTINGS, *tiled, clip, whole]).returncode == 0
    (tmp_path / "killed").mkdir()
    original, kept = _killed_after_two_chunks(clip, tmp_path / "killed" / "out.invr", tiled)
    out = tmp_path / "out.invr"
    shutil.copy(journal_path(str(original)), journal_path(str(out)))
    proc = run(["invr-enc", *SETTINGS, *tiled, "-v", "--resume", clip, out])
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(map(int, TRAINED.findall(proc.stderr.decode()))) == list(range(kept, 4))
    assert out.read_bytes() == whole.read_bytes()
    with invrcodec.open(out) as f:
        assert f.version == (4, 0) and [e.prediction for e in f.index][kept] == Prediction.PREVIOUS


@pytest.mark.parametrize(("change", "says"), [(["--qp", "30"], "qp=38 there, 30 now"),
                                              (["--steps", "100"], "steps=200 there, 100 now")])
def test_resume_with_other_settings_is_refused(clip: Path, interrupted: tuple[Path, int], tmp_path: Path,
                                               change: list[str], says: str) -> None:
    out = tmp_path / "out.invr"
    shutil.copy(journal_path(str(interrupted[0])), journal_path(str(out)))
    proc = run(["invr-enc", *SETTINGS, *change, "--resume", clip, out])
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("invr-enc: error: ") and "cannot resume" in lines[0] and says in lines[0]
    assert not out.exists() and Path(journal_path(str(out))).exists()


@pytest.mark.parametrize(("seed", "fps", "says"), [(5, 25, "frames 0-3 of the input differ"),
                                                   (0, 30, "cannot resume")])
def test_resume_with_another_input_is_refused(interrupted: tuple[Path, int], tmp_path: Path, seed: int,
                                              fps: int, says: str) -> None:
    other = write_clip(tmp_path / "other.y4m", synthetic_frames(32, 32, 16, seed=seed), fps=fps,
                       pix_fmt="yuv444p")
    out = tmp_path / "out.invr"
    shutil.copy(journal_path(str(interrupted[0])), journal_path(str(out)))
    proc = run(["invr-enc", *SETTINGS, "--resume", other, out])
    err = proc.stderr.decode()
    errors = [line for line in err.splitlines() if "error" in line]
    assert proc.returncode == 1 and len(errors) == 1 and says in errors[0], err  # found as the frames come in
    assert errors[0] == err.strip().splitlines()[-1] and "Traceback" not in err
    assert not out.exists()


def test_a_rerun_without_resume_keeps_the_journal(clip: Path, interrupted: tuple[Path, int],
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out.invr"
    shutil.copy(journal_path(str(interrupted[0])), journal_path(str(out)))
    proc = run(["invr-enc", *SETTINGS, clip, out])
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and "--resume continues it, -y starts over" in err, err
    assert Path(journal_path(str(out))).exists() and not out.exists()


def test_a_gop_job_runs_alone_to_the_encoders_packets() -> None:
    """The job seam: GOP jobs run on their own (as a Ray task runs them) give the packets of Encoder.encode,
    including a job that starts on a P-chunk with the reconstruction it continues from."""
    from invrcodec.codec.encoder import Encoder, EncoderConfig, job_runner
    from invrcodec.codec.jobs import ChunkJob, GopJob, run_gop
    from invrcodec.types import StreamInfo

    video = synthetic_frames(16, 16, 12)
    stream = StreamInfo(width=16, height=16, frame_count=12)
    cfg = EncoderConfig.from_preset("ultrafast", chunk_frames=3, hidden=16, layers=2, enc_dims=(4, 4, 2),
                                    steps=30, device="cpu", keyint=3)
    enc = Encoder(stream, cfg)
    want = [p for f in video for p in enc.encode(f)] + enc.encode(None)
    chunks = [ChunkJob(i, 3 * i, video[3 * i:3 * i + 3], enc.prediction_of(i)) for i in range(4)]
    first = list(run_gop(GopJob(stream, enc.config, tuple(chunks[:2])), job_runner(stream, enc.config)))
    rest = list(run_gop(GopJob(stream, enc.config, tuple(chunks[2:]), reference=first[-1][1]),
                        job_runner(stream, enc.config)))
    assert [p for p, _ in first + rest] == want
    assert [p.prediction.name for p in want] == ["KEY", "PREVIOUS", "PREVIOUS", "KEY"]
