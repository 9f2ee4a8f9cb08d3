"""Malformed input: truncation at every offset, random bit flips and garbage (spec "Error handling").

Whatever the bytes, ``invrcodec.open`` and ``demux`` raise only :class:`InvrFormatError` subclasses, never hang,
and never allocate memory from a length field before checking it. Every single-bit flip is detected (every
byte of a file is under a CRC). Runs on the committed golden file, read randomly and through a pipe.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import invrcodec
from invrcodec.format import structs as fmt
from invrcodec.errors import ChecksumError, InvrFormatError, TruncatedError
from invrcodec.types import Packet

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = (ROOT / "samples" / "tiny.invr").read_bytes()
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


class Pipe(io.RawIOBase):
    """Non-seekable, short reads: what a reader of stdin sees."""

    def __init__(self, data: bytes, piece: int = 4096) -> None:
        self._b = io.BytesIO(data)
        self._piece = piece

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        d = self._b.read(min(len(b), self._piece))
        b[: len(d)] = d
        return len(d)


def read_all(data: bytes, pipe: bool) -> list[Packet]:
    """Open and demux everything, touching every fact the API offers."""
    src = io.BufferedReader(Pipe(data)) if pipe else io.BytesIO(data)
    with invrcodec.open(src) as f:
        f.header  # noqa: B018
        packets = list(f.demux())
        f.index  # noqa: B018
        return packets


def expect_format_error(data: bytes, pipe: bool) -> InvrFormatError:
    try:
        read_all(data, pipe)
    except InvrFormatError as e:
        return e
    raise AssertionError(f"no error for {len(data)} bytes (pipe={pipe})")


def only_format_errors(data: bytes, pipe: bool) -> None:
    try:
        read_all(data, pipe)
    except InvrFormatError:
        pass


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def test_golden_is_intact() -> None:
    assert len(read_all(GOLDEN, False)) == len(read_all(GOLDEN, True)) == 2


@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
def test_truncation_at_every_offset(pipe: bool) -> None:
    for n in range(len(GOLDEN)):
        e = expect_format_error(GOLDEN[:n], pipe)
        assert e.offset is None or 0 <= e.offset <= n, (n, e)


@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
def test_every_bit_of_header_index_and_trailer(pipe: bool) -> None:
    """Exhaustively, where a flip changes structure rather than payload."""
    with invrcodec.open(io.BytesIO(GOLDEN)) as f:
        index = f.index
    header_end = index[0].offset
    index_start = index[-1].offset + index[-1].size
    # each chunk's framing, fixed fields and first tensor head
    chunk_heads = [range(e.offset, e.offset + 8 + 24 + 8) for e in index]
    bytes_ = [*range(header_end), *range(index_start, len(GOLDEN))]
    bytes_ += [i for r in chunk_heads for i in r]
    for byte in bytes_:
        for bit in range(8):
            expect_format_error(flip(GOLDEN, byte * 8 + bit), pipe)


@settings(FUZZ, max_examples=8000)
@given(bit=st.integers(0, len(GOLDEN) * 8 - 1), pipe=st.booleans())
def test_any_single_bit_flip_is_detected(bit: int, pipe: bool) -> None:
    expect_format_error(flip(GOLDEN, bit), pipe)


@settings(FUZZ, max_examples=1500)
@given(
    bits=st.lists(st.integers(0, len(GOLDEN) * 8 - 1), min_size=2, max_size=16),
    pipe=st.booleans(),
)
def test_many_bit_flips_raise_only_format_errors(bits: list[int], pipe: bool) -> None:
    data = GOLDEN
    for bit in bits:
        data = flip(data, bit)
    if data == GOLDEN:
        return
    expect_format_error(data, pipe)  # CRC32 catches these too (and anything else would show up here)


@settings(FUZZ, max_examples=1500)
@given(
    start=st.integers(0, len(GOLDEN)),
    cut=st.integers(0, 64),
    insert=st.binary(max_size=64),
    pipe=st.booleans(),
)
def test_splices_raise_only_format_errors(start: int, cut: int, insert: bytes, pipe: bool) -> None:
    data = GOLDEN[:start] + insert + GOLDEN[start + cut :]
    if data == GOLDEN:
        return
    only_format_errors(data, pipe)


@settings(FUZZ, max_examples=1000)
@given(tail=st.binary(max_size=300), keep=st.integers(0, 16), pipe=st.booleans())
def test_garbage_after_a_valid_start(tail: bytes, keep: int, pipe: bool) -> None:
    """A file that starts like INVR and continues with anything."""
    only_format_errors(GOLDEN[:keep] + tail, pipe)


def _peak_bytes(data: bytes, pipe: bool) -> tuple[type[BaseException], int]:
    tracemalloc.start()
    try:
        only = None
        try:
            read_all(data, pipe)
        except InvrFormatError as e:
            only = type(e)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert only is not None
    return only, peak


@pytest.mark.parametrize("pipe", [False, True], ids=["file", "pipe"])
def test_lying_lengths_allocate_nothing(pipe: bool) -> None:
    header_end = 16 + int.from_bytes(GOLDEN[12:16], "little") + 4
    # a CHNK record that claims 200 MiB and then ends
    liar = fmt.TAG_CHUNK + (200 << 20).to_bytes(4, "little") + b"\0" * 100
    kind, peak = _peak_bytes(GOLDEN[:header_end] + liar, pipe)
    assert kind is TruncatedError and peak < 8 << 20
    # a header that claims the largest allowed length
    data = bytearray(GOLDEN[:200])
    data[12:16] = fmt.LIMITS["max_header_length"].to_bytes(4, "little")
    kind, peak = _peak_bytes(bytes(data), pipe)
    assert kind is TruncatedError and peak < 8 << 20


def test_a_corrupt_chunk_never_reaches_the_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """decode() hands the decoder only CRC-checked packets: chunk 0 is decoded, chunk 1 is refused."""
    import numpy as np

    decoder_module = pytest.importorskip("invrcodec.codec.decoder")
    seen: list[int] = []

    class FakeDecoder:
        def __init__(self, header: object, device: str = "cpu") -> None:
            pass

        def decode(self, packet: Packet, start: int = 0, stop: int | None = None) -> np.ndarray:
            seen.append(packet.index)
            n = (packet.frame_count if stop is None else stop) - start
            return np.zeros((n, 16, 16, 3), np.uint8)

        def frames(self, packet: Packet, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
            yield from self.decode(packet, start, stop)  # the container's stored-size path, a frame at a time

        def weights(self, packet: Packet, tiles: object = None) -> tuple[None, ...]:
            seen.append(packet.index)  # a chunk before the range: only its weights
            return (None,)

    monkeypatch.setattr(decoder_module, "Decoder", FakeDecoder)
    with invrcodec.open(io.BytesIO(GOLDEN)) as f:
        second = f.index[1]
    bad = flip(GOLDEN, (second.offset + second.size - 40) * 8)  # inside chunk 1's last tensor
    with invrcodec.open(io.BytesIO(bad)) as f:
        frames: list[np.ndarray] = []
        with pytest.raises(ChecksumError, match="chunk 1: checksum mismatch"):
            frames.extend(f.decode())
    assert seen == [0] and len(frames) == 2
