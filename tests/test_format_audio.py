"""Audio in the container (format 2.1, spec "Audio"): AUDS, AUDP and AIDX through the muxer and the demuxer,
on files and pipes; interleaving and the audio index; the audio of a frame range; what a 2.0 reader sees;
crafted audio records (every CRC recomputed) refused with one message, by the API here and by both tools."""

from __future__ import annotations

import dataclasses
import io
import re
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from test_format import HEADER, PipeReader, CountingFile, packets

import invrcodec
from invrcodec.errors import InvrFormatError, MalformedError
from invrcodec.format import structs as fmt
from invrcodec.format.demuxer import Demuxer
from invrcodec.format.muxer import Muxer
from invrcodec.types import AudioPacket, AudioStreamInfo

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "tiny-audio.invr"
AAC = AudioStreamInfo("aac", 48000, 2, "stereo", Fraction(1, 48000), 1024, 128000, b"\x11\x90")
MP3 = AudioStreamInfo("mp3", 44100, 1, "mono", Fraction(1, 44100), 1152, 64000)

if "invr_fuzz_tool" not in sys.modules:
    import importlib.util

    _spec = importlib.util.spec_from_file_location("invr_fuzz_tool", ROOT / "tools" / "fuzz.py")
    assert _spec and _spec.loader
    sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_spec.name])
fuzz = sys.modules["invr_fuzz_tool"]
from evalkit import crafted as craft  # noqa: E402  (tools/ is on sys.path once fuzz.py is loaded)


def tone(stream: int, info: AudioStreamInfo, start: int, count: int) -> list[AudioPacket]:
    """``count`` packets of ``info.frame_size`` ticks from pts ``start``, each a different payload."""
    n = info.frame_size
    return [AudioPacket(stream, start + k * n, start + k * n, n, bytes([stream, k % 256]) * (5 + k % 7),
                        keyframe=True, discard=k == 0 and start < 0) for k in range(count)]


def write(audio: tuple[AudioStreamInfo, ...], pkts: list[AudioPacket], frames: int = 10,
          fileobj: Any = None) -> bytes:
    out = fileobj if fileobj is not None else io.BytesIO()
    with invrcodec.open(out, "w", header=HEADER, audio=audio) as f:
        f.mux_audio(pkts)
        f.mux(packets(frames))
    return out.getvalue() if fileobj is None else b""


def sources(data: bytes) -> list[Any]:
    return [io.BytesIO(data), io.BufferedReader(PipeReader(data, piece=37))]


def test_round_trip_on_files_and_pipes() -> None:
    pkts = tone(0, AAC, -1024, 20) + tone(1, MP3, 0, 12)
    data = write((AAC, MP3), pkts)
    assert fmt.parse_preamble(data[:16]).minor == 1
    for src in sources(data):
        with invrcodec.open(src) as f:
            assert f.audio_streams == (AAC, MP3) and f.audio == AAC
            items = list(f.demux(audio=True))
            assert [p for p in items if not isinstance(p, AudioPacket)] == packets(10)
            got = [p for p in items if isinstance(p, AudioPacket)]
            assert sorted(got, key=lambda p: (p.stream, p.dts)) == pkts
            assert sum(e.packet_count for e in f.audio_index) == 32


def test_without_audio_the_file_is_2_0_byte_for_byte() -> None:
    with_api = write((), [])
    buf = io.BytesIO()
    muxer = Muxer(buf, HEADER, minor=0)
    for p in packets(10):
        muxer.mux(p)
    muxer.close()
    assert with_api == buf.getvalue() and fmt.parse_preamble(with_api[:16]).minor == 0
    with invrcodec.open(io.BytesIO(with_api)) as f:
        assert f.audio_streams == () and f.audio is None and f.audio_index == []
        assert list(f.demux_audio()) == []


def test_audio_comes_with_its_chunk_and_the_audio_index_after_the_last() -> None:
    """Each packet sits before the CHNK record of the chunk whose time it starts in; the AIDX record follows
    the last chunk; what starts after the last frame follows the AIDX record (spec "Audio", placement)."""
    rate = HEADER.stream.frame_rate
    pkts = tone(0, AAC, -1024, 30)  # 0.64 s of audio, 10 frames of video (0.33 s)
    data = write((AAC,), pkts)
    demuxer = Demuxer(io.BytesIO(data))
    index, audio = demuxer.index or [], demuxer.audio_index or []
    last_chunk_end = index[-1].offset + index[-1].size
    records = sorted([(e.offset, "chunk", e) for e in index] + [(a.offset, "audio", a) for a in audio])
    chunk_end = [Fraction(e.first_frame + e.frame_count) / rate for e in index]
    seen_chunks = 0
    for offset, kind, e in records:
        if kind == "chunk":
            seen_chunks += 1
            continue
        tb = AAC.time_base
        starts = [Fraction(p) * tb for p in range(e.start, e.end, AAC.frame_size)]
        if offset < last_chunk_end:  # before chunk seen_chunks: starts before it ends, after the one before
            assert all(s < chunk_end[seen_chunks] for s in starts)
            assert seen_chunks == 0 or all(s >= chunk_end[seen_chunks - 1] for s in starts)
        else:
            assert offset > last_chunk_end and all(s >= chunk_end[-1] for s in starts)
    head = data[last_chunk_end : last_chunk_end + 4]
    assert head == fmt.TAG_AUDIO_INDEX


@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
@pytest.mark.parametrize(("first", "count"), [(0, None), (0, 3), (3, 3), (4, 1), (9, 1), (7, None), (2, 8)])
def test_the_audio_of_a_frame_range(first: int, count: int | None, pipe: bool) -> None:
    pkts = tone(0, AAC, -1024, 30)
    data = write((AAC,), pkts)
    rate, tb = HEADER.stream.frame_rate, AAC.time_base
    lo = Fraction(first) / rate
    hi = None if count is None else Fraction(first + count) / rate
    expected = [p for p in pkts
                if (hi is None or p.pts * tb < hi) and (first == 0 or (p.pts + p.duration) * tb > lo)]
    with invrcodec.open(sources(data)[pipe]) as f:
        assert list(f.demux_audio(first, count)) == expected
    with invrcodec.open(sources(data)[pipe]) as f:
        items = list(f.demux(first, count, audio=True))
        assert [p for p in items if isinstance(p, AudioPacket)] == expected
        assert [p.index for p in items if not isinstance(p, AudioPacket)] == [
            p.index for p in packets(10) if p.first_frame + p.frame_count > first
            and (count is None or p.first_frame < first + count)]


def test_a_seek_reads_only_the_audio_it_needs() -> None:
    pkts = tone(0, AAC, -1024, 400)  # 8.5 s: records of one chunk's time each
    data = write((AAC,), pkts, frames=240)
    src = CountingFile(data)
    with invrcodec.open(src) as f:
        audio_index = f.audio_index
        src.ranges.clear()
        got = list(f.demux_audio(120, 3))
    assert got and all(abs(p.pts * AAC.time_base - Fraction(121) / HEADER.stream.frame_rate) < Fraction(1, 10)
                       for p in got)
    read = sum(b - a for a, b in src.ranges)
    assert read <= 2 * max(e.size for e in audio_index) < len(data) // 20, (read, len(data))


def test_a_2_0_reader_skips_the_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the three tags unknown to it, as to a 2.0 reader, the same demuxer reads the video of a 2.1 file
    (and the golden one decodes: tests/test_format.py) and hands out no audio."""
    data = write((AAC,), tone(0, AAC, -1024, 30))
    for name in ("TAG_AUDIO", "TAG_AUDIO_INDEX", "EXT_AUDIO_STREAM"):
        monkeypatch.setattr(fmt, name, b"????")
    for src in sources(data) + sources(SAMPLE.read_bytes()):
        with invrcodec.open(src) as f:
            assert f.audio_streams == ()
            assert [p for p in f.demux(audio=True) if isinstance(p, AudioPacket)] == []


def test_the_muxer_refuses_what_a_reader_would() -> None:
    cases: list[tuple[Callable[[Muxer], None], str]] = [
        (lambda m: m.mux_audio(tone(1, AAC, 0, 1)[0]), "declares 1 audio streams"),
        (lambda m: m.mux_audio(dataclasses.replace(tone(0, AAC, 0, 1)[0], data=b"")), "0 bytes"),
        (lambda m: [m.mux_audio(p) for p in reversed(tone(0, AAC, 0, 2))], "before the previous packet's"),
        (lambda m: m.mux_audio(dataclasses.replace(tone(0, AAC, 0, 1)[0], pts=2**62 + 1)), "beyond +-2^62"),
    ]
    for act, message in cases:
        muxer = Muxer(io.BytesIO(), HEADER, audio=(AAC,))
        with pytest.raises(MalformedError, match=re.escape(message)):
            act(muxer)
    for bad, message in [
        (dataclasses.replace(AAC, codec="AAC"), "codec name 'AAC'"),
        (dataclasses.replace(AAC, codec="a" * 33), "is not 1..32"),
        (dataclasses.replace(AAC, sample_rate=0), "sample_rate 0"),
        (dataclasses.replace(AAC, channels=0), "channels 0"),
        (dataclasses.replace(AAC, channel_layout="st\tereo"), "not printable ASCII"),
        (dataclasses.replace(AAC, time_base=Fraction(1, 2**31)), "time base"),
        (dataclasses.replace(AAC, extradata=bytes(2**20 + 1)), "bytes of extradata"),
    ]:
        with pytest.raises(MalformedError, match=re.escape(message)):
            Muxer(io.BytesIO(), HEADER, audio=(bad,))


def test_an_empty_audio_stream_and_a_file_of_no_chunks() -> None:
    for frames, pkts in ((10, []), (0, tone(0, AAC, 0, 5))):
        out = io.BytesIO()
        with invrcodec.open(out, "w", header=HEADER, audio=(AAC,)) as f:
            f.mux_audio(pkts)
            f.mux(packets(frames))
        for src in sources(out.getvalue()):
            with invrcodec.open(src) as g:
                assert list(g.demux_audio()) == pkts


# --- crafted files (tiny-audio.invr with one change and every CRC recomputed) ---------------------------


def crafted(change: Callable[[Any], None]) -> bytes:
    model = craft.load(SAMPLE.read_bytes())
    change(model)
    return craft.dump(model)


def _stream(field: str, value: Any) -> Callable[[Any], None]:
    return lambda m: m.header.extensions[0].audio.__setitem__(field, value)


def _packet(record: int, packet: int, field: str, value: Any) -> Callable[[Any], None]:
    return lambda m: m.audio[record][1].packets[packet].__setitem__(field, value)


def _move(record: int, where: int | None) -> Callable[[Any], None]:
    return lambda m: m.audio.__setitem__(record, (where, m.audio[record][1]))


def _patch(entry: int, field: str, value: Any) -> Callable[[Any], None]:
    return lambda m: m.audio_index_patches.append((entry, field, value))


def _no_index(m: Any) -> None:
    m.audio_index = False


def _undeclared(m: Any) -> None:
    m.header.extensions.clear()


# (change, what the message says on a file, and on a pipe when that differs)
CRAFTED: list[tuple[str, Callable[[Any], None], str, str | None]] = [
    ("codec charset", _stream("codec", "AAC"), "header: audio stream 0: codec name 'AAC' is not 1..32", None),
    ("codec empty", _stream("codec", ""), "header: audio stream 0: codec name '' is not", None),
    ("sample rate", _stream("sample_rate", 0), "header: audio stream 0: sample_rate 0 not in 1..4194304",
     None),
    ("channels", _stream("channels", 256), "header: audio stream 0: channels 256 not in 1..255", None),
    ("layout", _stream("channel_layout", "mono\x7f"), "channel_layout 'mono\\x7f' is not printable ASCII",
     None),
    ("time base 0", _stream("time_base_den", 0), "header: audio stream 0: time_base must be > 0", None),
    ("time base term", _stream("time_base_den", 2**31), "time base 1/2147483648 has terms beyond", None),
    ("extradata", _stream("extradata", bytes(2**18 + 1)), "262145 bytes of extradata (at most 262144)", None),
    ("empty packet", _packet(1, 0, "data", b""), "audio record 1: packet 0: 0 bytes (1..16777216)",
     "packet 0: 0 bytes (1..16777216)"),
    ("flags", _packet(0, 1, "flags", 0x81), "audio record 0: packet 1: unknown flags 0x81",
     "unknown flags 0x81"),
    ("timestamp", _packet(2, 0, "pts", 2**62 + 1),
     "packet 0: pts 4611686018427387905, dts 2048, duration 352 beyond +-2^62", None),
    ("stream", lambda m: m.audio[1][1].__setitem__("stream", 1), "audio stream 1, the header declares 1",
     None),
    ("dts order", _move(2, 0), "audio index entry 2: dts 1024 before the previous record's 2048",
     "packet 0: dts 1024 before the previous packet's 2048"),
    ("audio index entry", _patch(0, "end", 1025), "audio record 0: does not match its audio index entry",
     "audio index: does not match the audio records read"),
    ("audio index crc", _patch(1, "crc32", 7), "audio record 1: checksum does not match the audio index",
     "audio index: does not match the audio records read"),
    ("no audio index", _no_index, "audio index: none after the last chunk",
     "no audio index before the index"),
    ("audio index placement", _move(1, 2), "audio index: none after the last chunk (byte 2750 holds b'AUDP')",
     "does not follow the last chunk"),
    ("undeclared audio", _undeclared, "in a file that declares no audio stream", None),
]
IDS = [c[0] for c in CRAFTED]


@pytest.mark.parametrize(("name", "change", "on_file", "on_pipe"), CRAFTED, ids=IDS)
@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
def test_crafted_audio_is_refused(name: str, change: Callable[[Any], None], on_file: str, on_pipe: str | None,
                                  pipe: bool) -> None:
    data = crafted(change)
    with pytest.raises(InvrFormatError, match=re.escape(on_pipe if pipe and on_pipe else on_file)):
        with invrcodec.open(sources(data)[pipe]) as f:
            list(f.demux(audio=True))


def test_the_unchanged_sample_passes() -> None:
    data = crafted(lambda m: None)
    assert data == SAMPLE.read_bytes()
    for src in sources(data):
        with invrcodec.open(src) as f:
            assert [p.pts for p in f.demux_audio()] == [-1024, 0, 1024, 2048]
