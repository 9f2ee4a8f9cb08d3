"""Behaviour every tool shares, driven through the installed console scripts: usage errors, one-line errors,
--version, -y/-n, and the safe-output helper. Nothing here trains a network, so these are quick."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run, write_audio_only

from invrcodec.cli import common


@pytest.mark.parametrize("tool", ["invr-enc", "invr-dec"])
def test_version_and_help(bin_dir: Path, tool: str) -> None:
    proc = run([tool, "--version"])
    assert proc.returncode == 0
    assert proc.stdout.decode().startswith(f"{tool} (invrcodec) ")
    proc = run([tool, "--help"])
    assert proc.returncode == 0
    assert "IN OUT" in proc.stdout.decode()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["only-one-arg"],
        ["--preset", "veryslowest", "a", "b"],
        ["--device", "gpu", "a", "b"],
        ["--enc-dims", "1,2", "a", "b"],
        ["--scale", "12", "a", "b"],
        ["--frames", "0", "a", "b"],
        ["-y", "-n", "a", "b"],
        ["--no-such-option", "a", "b"],
    ],
)
def test_enc_usage_errors_exit_2(bin_dir: Path, args: list[str]) -> None:
    proc = run(["invr-enc", *args])
    assert proc.returncode == 2, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert proc.stdout == b""


@pytest.mark.parametrize("args", [[], ["--seek", "-1", "a", "b"], ["-y", "-n", "a", "b"]])
def test_dec_usage_errors_exit_2(bin_dir: Path, args: list[str]) -> None:
    proc = run(["invr-dec", *args])
    assert proc.returncode == 2, proc.stderr
    assert b"Traceback" not in proc.stderr


def _one_error_line(proc, tool: str) -> str:  # type: ignore[no-untyped-def]
    err = proc.stderr.decode()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{tool}: error: "), err
    return lines[0]


def test_missing_input_is_one_line(bin_dir: Path, tmp_path: Path) -> None:
    line = _one_error_line(run(["invr-enc", tmp_path / "nope.mp4", tmp_path / "o.invr"]), "invr-enc")
    assert line.endswith("nope.mp4: No such file or directory")
    line = _one_error_line(run(["invr-dec", tmp_path / "nope.invr", tmp_path / "o.y4m"]), "invr-dec")
    assert line.endswith("nope.invr: No such file or directory")
    assert not list(tmp_path.iterdir())


def test_not_a_video_and_audio_only(bin_dir: Path, tmp_path: Path) -> None:
    text = tmp_path / "in.mp4"
    text.write_text("this is not a video\n" * 50)
    line = _one_error_line(run(["invr-enc", text, tmp_path / "o.invr"]), "invr-enc")
    assert "in.mp4: cannot read as video" in line
    sound = write_audio_only(tmp_path / "tone.m4a")
    line = _one_error_line(run(["invr-enc", sound, tmp_path / "o.invr"]), "invr-enc")
    assert line == f"invr-enc: error: {sound}: no video stream (audio only)"
    assert not (tmp_path / "o.invr").exists()


def test_not_an_invr_file(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    line = _one_error_line(run(["invr-dec", tiny_y4m, tmp_path / "o.y4m"]), "invr-dec")
    assert str(tiny_y4m) in line
    assert not (tmp_path / "o.y4m").exists()


def test_empty_stdin(bin_dir: Path, tmp_path: Path) -> None:
    line = _one_error_line(run(["invr-enc", "-", tmp_path / "o.invr"], input=b""), "invr-enc")
    assert "stdin: empty input" in line
    line = _one_error_line(run(["invr-enc", "-", tmp_path / "o.invr"], input=b"garbage" * 100), "invr-enc")
    assert "stdin: cannot read as video" in line


def test_existing_output_is_refused_without_y(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.invr"
    out.write_bytes(b"precious")
    for flags in ([], ["-n"]):
        line = _one_error_line(run(["invr-enc", *flags, tiny_y4m, out], input=b""), "invr-enc")
        assert "already exists" in line
        assert out.read_bytes() == b"precious"
    video = tmp_path / "o.y4m"
    video.write_bytes(b"precious")
    line = _one_error_line(run(["invr-dec", tiny_y4m, video], input=b""), "invr-dec")
    assert "already exists" in line
    assert video.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.invr", "o.y4m"]


def test_output_same_as_input_is_refused(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    copy = tmp_path / "same.y4m"
    copy.write_bytes(tiny_y4m.read_bytes())
    line = _one_error_line(run(["invr-enc", "-y", copy, copy]), "invr-enc")
    assert "same file as the input" in line
    assert copy.read_bytes() == tiny_y4m.read_bytes()


def test_output_directory_missing(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    line = _one_error_line(run(["invr-enc", tiny_y4m, tmp_path / "no" / "such" / "o.invr"]), "invr-enc")
    assert "cannot create" in line


def test_unknown_output_extension(bin_dir: Path, tiny_y4m: Path, tmp_path: Path) -> None:
    line = _one_error_line(run(["invr-dec", tiny_y4m, tmp_path / "o.xyz"]), "invr-dec")
    assert "cannot tell the output format" in line and "-f FORMAT" in line


# -- the helpers themselves ---------------------------------------------------------------------------


def test_safe_output_commits_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with common.SafeOutput(str(target), None) as safe:
        assert Path(safe.target).parent == tmp_path and Path(safe.target) != target
        Path(safe.target).write_bytes(b"done")
        safe.commit()
    assert target.read_bytes() == b"done"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    with pytest.raises(RuntimeError), common.SafeOutput(str(tmp_path / "failed.bin"), None) as safe:
        Path(safe.target).write_bytes(b"half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_safe_output_writes_devices_in_place(tmp_path: Path) -> None:
    with common.SafeOutput(os.devnull, None) as safe:
        assert safe.target == os.devnull
        safe.commit()
    assert os.path.exists(os.devnull)


def test_check_output_policy(tmp_path: Path) -> None:
    path = tmp_path / "x"
    common.check_output(str(path), None)  # absent: fine
    path.write_text("x")
    common.check_output(str(path), True)
    with pytest.raises(common.CliError, match="not overwriting"):
        common.check_output(str(path), False)
    with pytest.raises(common.CliError, match="is a directory"):
        common.check_output(str(tmp_path), True)
    common.check_output(os.devnull, None)


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_swallowed_interrupt_is_raised_again(sig: str, code: int) -> None:
    """A library's bare ``except:`` can eat the exception a signal raises; the next raise_pending_signal()
    (which the encoder's progress callback calls every few steps) ends the run all the same."""
    import signal

    reached = []

    def body() -> int:
        try:
            os.kill(os.getpid(), getattr(signal, sig))
            for _ in range(1000):  # the handler runs at the next bytecode
                pass
        except BaseException:  # noqa: BLE001, S110 - the library that swallows it
            pass
        reached.append("after the swallow")
        common.raise_pending_signal()
        reached.append("never")
        return 0

    assert common.execute("invr-test", body) == code
    assert reached == ["after the swallow"]
    common.raise_pending_signal()  # handled: nothing is left pending after execute()
