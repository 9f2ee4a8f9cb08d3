"""Decoding at another size, frame rate and region (issue 13; spec: "Sampling at another size, time or region").

Real encodes of small synthetic clips, decoded through the Python API and the installed ``invr-dec``; the
normative positions against eq. 4; the chunk-boundary policies against the chunks' own networks.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_DEC, FAST_ENC, read_rgb, run
from test_cli_pipes import HEADLESS, count_frames, pipeline

import invrcodec
from invrcodec.cli import dec as cli_dec
from invrcodec.codec.decoder import Decoder
from invrcodec.errors import InvrConfigError
from invrcodec.net.model import axis_coords
from invrcodec.codec.sampling import (
    BOUNDARIES,
    Region,
    Timeline,
    axis_positions,
    chunk_terms,
    plan_geometry,
    time_position,
)

W, H, N, CHUNK = 40, 24, 12, 4  # the multi-chunk clip: 3 chunks of 4 frames


@pytest.fixture(scope="module")
def chunked_invr(make_clip, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    src = make_clip("resample.y4m", W, H, N, pix_fmt="yuv444p")
    out = tmp_path_factory.mktemp("resample") / "chunked.invr"
    proc = run(["invr-enc", *FAST_ENC, "--chunk-frames", str(CHUNK), src, out])
    assert proc.returncode == 0, proc.stderr.decode()
    return out


def _decode(path: Path, **kwargs: object) -> np.ndarray:
    with invrcodec.open(path) as f:
        return np.stack(list(f.decode(**kwargs)))  # type: ignore[arg-type]


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# -- the normative positions ----------------------------------------------------------------------------


def test_positions_at_1x_are_eq4_bit_for_bit() -> None:
    for n in [*range(1, 300), 1000, 1919, 4096, 65535]:
        assert np.array_equal(axis_positions(n, 0, n, n), axis_coords(n).numpy()), n
        sub = axis_positions(n, n // 3, n - n // 3, n - n // 3)  # a crop at its own size
        assert np.array_equal(sub, axis_coords(n).numpy()[n // 3:]), n
    for t in range(1, 100):
        whole = [time_position(Fraction(k), t) for k in range(t)]
        assert np.array_equal(np.array(whole), axis_coords(t).numpy()), t


def test_positions_are_pixel_centres_of_the_output_grid() -> None:
    # 4 source columns at -1, -0.5, 0, 0.5 (eq. 4); at 2x each output pixel sits a quarter pixel either
    # side of a source pixel centre; at 1/2 midway between two source pixels.
    assert axis_positions(4, 0, 4, 8).tolist() == [-1.125, -0.875, -0.625, -0.375, -0.125, 0.125, 0.375, 0.625]
    assert axis_positions(4, 0, 4, 2).tolist() == [-0.75, 0.25]
    assert axis_positions(4, 1, 2, 4).tolist() == [-0.625, -0.375, -0.125, 0.125]  # crop 2 columns at 2x
    assert time_position(Fraction(1, 2), 4) == -0.75


# -- the timeline ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "first", "count", "expected"), [
    (None, 0, None, 12), (Fraction(50), 0, None, 24), (Fraction(10), 0, None, 5), (Fraction(50), 3, 5, 5),
    (Fraction(75, 2), 11, None, 2), (Fraction(1), 0, None, 1),
])
def test_output_frame_counts_keep_the_duration(rate: Fraction | None, first: int, count: int | None,
                                               expected: int) -> None:
    assert Timeline(Fraction(25), first, count, rate).count(12) == expected


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_boundary_terms(boundary: str) -> None:
    tl = Timeline(Fraction(1), 0, None, Fraction(4), boundary)  # type: ignore[arg-type]
    terms = dict(chunk_terms(tl, 13, 4, 4, 4, None))  # chunk [4, 8) after one of 4: 3.25, 3.5, 3.75, 4 .. 7
    assert sorted(terms) == list(range(13, 29))
    first = terms[13]
    if boundary == "crossfade":
        assert [(t.which, t.offset, t.weight) for t in first] == [(-1, Fraction(3), Fraction(3, 4)),
                                                                   (0, Fraction(0), Fraction(1, 4))]
    elif boundary == "blend":
        assert [(t.which, t.offset, t.weight) for t in first] == [(-1, Fraction(13, 4), Fraction(3, 4)),
                                                                   (0, Fraction(-3, 4), Fraction(1, 4))]
    elif boundary == "nearest":
        assert [(t.which, t.offset) for t in first] == [(-1, Fraction(13, 4))]
        assert [(t.which, t.offset) for t in terms[14]] == [(0, Fraction(-1, 2))]
    else:
        assert [(t.which, t.offset) for t in first] == [(-1, Fraction(3))]
        assert [(t.which, t.offset) for t in terms[15]] == [(0, Fraction(0))]
    assert [(t.which, t.offset) for t in terms[16]] == [(0, Fraction(0))]
    assert cli_dec.BOUNDARIES == list(BOUNDARIES)


def test_size_limit_is_the_formats() -> None:
    """sampling repeats the format's frame-side limit to stay free of the format layer; the two agree."""
    from invrcodec.codec import sampling
    from invrcodec.format.structs import LIMITS

    assert sampling.MAX_DIMENSION == LIMITS["max_dimension"]


def test_geometry_errors_are_one_line() -> None:
    for kwargs in ({"region": (10, 10, 35, 0)}, {"region": (0, 10, 0, 0)}, {"size": (70000, 10)},
                   {"scale": 4000}, {"scale": -1}, {"size": (2, 2), "scale": 2}):
        with pytest.raises(InvrConfigError) as err:
            plan_geometry(W, H, **kwargs)  # type: ignore[arg-type]
        assert "\n" not in str(err.value)
    for text in ("1:2:3", "a:b:c:d", "0:4:0:0", "4:4:-1:0"):
        with pytest.raises(ValueError):
            Region.parse(text)
    with pytest.raises(InvrConfigError):
        Timeline(Fraction(25), rate=Fraction(-1))


# -- decoding through the API ---------------------------------------------------------------------------


def test_1x_through_the_new_path_is_todays_decode(chunked_invr: Path) -> None:
    plain = _decode(chunked_invr)
    assert plain.shape == (N, H, W, 3)
    assert np.array_equal(_decode(chunked_invr, size=(W, H)), plain)
    assert np.array_equal(_decode(chunked_invr, scale=1, rate=Fraction(25)), plain)
    assert np.array_equal(_decode(chunked_invr, region=(W, H, 0, 0), first_frame=5, frame_count=4), plain[5:9])
    with invrcodec.open(chunked_invr) as f:
        packet = next(iter(f.demux()))
        assert np.array_equal(Decoder(f.header).decode(packet, 1, 3, size=(W, H)), plain[1:3])


def test_sizes_and_rates(chunked_invr: Path) -> None:
    assert _decode(chunked_invr, size=(64, 50)).shape == (N, 50, 64, 3)
    assert _decode(chunked_invr, scale=Fraction(1, 2), frame_count=3).shape == (3, 12, 20, 3)
    doubled = _decode(chunked_invr, rate=50)
    assert doubled.shape == (2 * N, H, W, 3)
    plain = _decode(chunked_invr)
    assert np.array_equal(doubled[::2], plain)  # the stored instants are the stored frames
    assert not np.array_equal(doubled[1], doubled[0]) and not np.array_equal(doubled[1], doubled[2])
    assert _decode(chunked_invr, rate=10, first_frame=2).shape == (4, H, W, 3)  # instants 2, 4.5, 7, 9.5
    assert _decode(chunked_invr, rate=29.97, frame_count=7, first_frame=1).shape == (7, H, W, 3)


def test_crop_equals_the_region_of_a_full_decode(chunked_invr: Path) -> None:
    full = _decode(chunked_invr)
    crop = _decode(chunked_invr, region=(17, 9, 11, 5))
    assert crop.shape == (N, 9, 17, 3)
    assert _diff(crop, full[:, 5:14, 11:28]) <= 1
    big = _decode(chunked_invr, scale=2, frame_count=4)
    crop2 = _decode(chunked_invr, region=(10, 6, 20, 12), scale=2, frame_count=4)
    assert crop2.shape == (4, 12, 20, 3)
    assert _diff(crop2, big[:, 24:36, 40:60]) <= 1


def test_between_chunks(chunked_invr: Path) -> None:
    """The instant 3.5 lies between chunk 0's last frame and chunk 1's first: each policy does what the
    spec says, checked against the two chunks' networks sampled there directly."""
    got = {b: _decode(chunked_invr, rate=50, first_frame=3, frame_count=2, boundary=b)[1] for b in BOUNDARIES}
    with invrcodec.open(chunked_invr) as f:
        dec = Decoder(f.header)
        p0, p1 = list(f.demux(0, 5))[:2]
        before = dec.decode(p0, times=[Fraction(7, 2)])[0].astype(float)
        after = dec.decode(p1, times=[Fraction(-1, 2)])[0].astype(float)
    plain = _decode(chunked_invr)
    assert np.array_equal(got["hold"], plain[4])  # a tie goes to the later frame
    assert np.array_equal(got["nearest"], after.astype(np.uint8))
    assert np.abs(got["blend"] - (before + after) / 2).max() <= 1
    mean = (plain[3].astype(float) + plain[4]) / 2  # crossfade: the two stored frames, mixed before rounding
    assert np.abs(got["crossfade"] - mean).max() <= 1
    assert np.array_equal(_decode(chunked_invr, rate=50, first_frame=3, frame_count=2)[1], got["crossfade"])


def test_api_errors(chunked_invr: Path) -> None:
    with invrcodec.open(chunked_invr) as f, pytest.raises(InvrConfigError, match="outside the 40x24 frame"):
        next(iter(f.decode(region=(8, 8, 36, 0))))
    with invrcodec.open(chunked_invr) as f, pytest.raises(InvrConfigError, match="boundary"):
        next(iter(f.decode(rate=50, boundary="smooth")))


# -- invr-dec -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["--size", "64x48"], (N, 64, 48)), (["-s", "20x12"], (N, 20, 12)), (["--scale", "3/2"], (N, 60, 36)),
    (["--scale", "50x30"], (N, 50, 30)), (["--crop", "16:8:4:2"], (N, 16, 8)),
    (["--crop", "16:8:4:2", "--scale", "2"], (N, 32, 16)), (["-r", "50"], (2 * N, W, H)),
    (["--fps", "10", "--seek", "2", "--frames", "3"], (3, W, H)), (["--fps", "30000/1001"], (15, W, H)),
])
def test_invr_dec_dimensions_and_frame_counts(ffprobe: str, chunked_invr: Path, tmp_path: Path,
                                              args: list[str], expected: tuple[int, int, int]) -> None:
    out = tmp_path / "out.mkv"
    proc = run(["invr-dec", *FAST_DEC, *args, chunked_invr, out])
    assert proc.returncode == 0, proc.stderr.decode()
    assert count_frames(ffprobe, out) == expected


def test_invr_dec_1x_bytes_and_crop(chunked_invr: Path, tmp_path: Path) -> None:
    plain, same, crop = tmp_path / "plain.y4m", tmp_path / "same.y4m", tmp_path / "crop.y4m"
    for extra, out in (([], plain), (["--size", f"{W}x{H}", "--fps", "25"], same),
                       (["--crop", "10:10:30:14", "--pix-fmt", "yuv444p"], crop)):
        proc = run(["invr-dec", *FAST_DEC, "--pix-fmt", "yuv444p", *extra, chunked_invr, out])
        assert proc.returncode == 0, proc.stderr.decode()
    assert plain.read_bytes() == same.read_bytes()
    assert _diff(read_rgb(crop), read_rgb(plain)[:, 14:24, 30:40]) <= 3  # yuv444p round trip adds a little


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--size", "0x10"], 2, "width and height must be at least 1"),
    (["--size", "-4x10"], 2, "is not a size"),
    (["--size", "70000x10"], 2, "at most 65535"),
    (["--scale", "0"], 2, "greater than 0"),
    (["--fps", "-25"], 2, "greater than 0"),
    (["--crop", "8:8"], 2, "is not a crop like W:H:X:Y"),
    (["--size", "8x8", "--scale", "2"], 2, "contradict"),
    (["--crop", "8:8:36:0"], 1, "crop 8:8:36:0 reaches outside the 40x24 frame"),
    (["--crop", "41:1:0:0"], 1, "reaches outside"),
    (["--scale", "2000"], 1, "output size 80000x48000 is outside"),
])
def test_invr_dec_bad_values(chunked_invr: Path, tmp_path: Path, args: list[str], code: int,
                             message: str) -> None:
    out = tmp_path / "bad.y4m"
    proc = run(["invr-dec", *FAST_DEC, *args, chunked_invr, out])
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert message in err and "Traceback" not in err
    assert not out.exists()
    if code == 1:
        errors = [line for line in err.splitlines() if "error" in line]
        assert errors == [f"invr-dec: error: {chunked_invr}: {errors[0].split(': ', 3)[-1]}"]


def test_invr_dec_size_into_ffplay(ffplay: str, tiny_invr: Path) -> None:
    """invr-dec --size 256x256 file.invr - | ffplay -autoexit - (README), on SDL's dummy display."""
    codes, _, errs = pipeline(
        ["invr-dec", *FAST_DEC, "-q", "--size", "256x256", tiny_invr, "-"],
        [ffplay, "-hide_banner", "-loglevel", "info", "-autoexit", "-vf", "showinfo", "-"],
        env=HEADLESS,
        timeout=120,
    )
    assert codes == [0, 0], errs
    assert len(re.findall(rb"\] n:\s*(\d+)", errs[1])) == 6, errs[1][-2000:]
    assert b"s:256x256" in errs[1] and b"s:32x32" not in errs[1]

