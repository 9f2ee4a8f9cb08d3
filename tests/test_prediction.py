"""Inter-chunk prediction (spec "Prediction"): key chunks and P-chunks, random access from the key chunk,
and files whose references are missing or damaged."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_DEC, encode_to_bytes, run, synthetic_frames

import invrcodec
from invrcodec.format import structs as fmt
from invrcodec.codec.decoder import Decoder
from invrcodec.codec.encoder import Encoder, EncoderConfig
from invrcodec.errors import ChecksumError, InvrFormatError, MalformedError
from invrcodec.types import Prediction, StreamInfo

CHUNK = 2
KEYINT = 4


@pytest.fixture(scope="module")
def predicted_file() -> bytes:
    """20 frames of 16x16 in 10 chunks of 2: key chunks 0, 4 and 8, P-chunks between."""
    cfg = EncoderConfig.from_preset("ultrafast", chunk_frames=CHUNK, hidden=16, layers=2, steps=40,
                                    keyint=KEYINT, device="cpu")
    return encode_to_bytes(synthetic_frames(16, 16, 20), cfg)


class CountingReader(io.BytesIO):
    """A seekable file that records the byte ranges read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[tuple[int, int]] = []

    def read(self, n: int | None = -1) -> bytes:
        at = self.tell()
        data = super().read(n)
        self.reads.append((at, at + len(data)))
        return data


def _chunks_read(reader: CountingReader, index: list) -> list[int]:
    return [i for i, e in enumerate(index)
            if any(a < e.offset + e.size and e.offset < b for a, b in reader.reads)]


def test_key_chunks_every_keyint_and_marked_in_the_index(predicted_file: bytes) -> None:
    with invrcodec.open(io.BytesIO(predicted_file)) as f:
        assert f.version == (2, 0)
        kinds = [e.prediction for e in f.index]
        packets = list(f.demux())
    assert kinds == [Prediction.KEY if i % KEYINT == 0 else Prediction.PREVIOUS for i in range(10)]
    assert [p.prediction for p in packets] == kinds
    # A P-chunk codes a residual: smaller than the key chunks around it on this slowly moving clip.
    sizes = [p.size for p in packets]
    assert np.mean([s for s, k in zip(sizes, kinds) if k == Prediction.PREVIOUS]) < \
        np.mean([s for s, k in zip(sizes, kinds) if k == Prediction.KEY])


def test_decoded_quality_of_p_chunks_is_what_the_encoder_measured(predicted_file: bytes) -> None:
    frames = synthetic_frames(16, 16, 20)
    with invrcodec.open(io.BytesIO(predicted_file)) as f:
        decoded = np.stack(list(f.decode()))
        for e in f.index:
            part = decoded[e.first_frame:e.first_frame + e.frame_count]
            mse = ((part.astype(np.float64) - frames[e.first_frame:e.first_frame + e.frame_count]) ** 2).mean()
            assert 10 * np.log10(255.0**2 / mse) == pytest.approx(e.train_psnr, abs=1e-6)


@pytest.mark.parametrize(("frame", "chunks"), [(0, [0]), (3, [0, 1]), (15, [4, 5, 6, 7]), (17, [8]),
                                               (19, [8, 9])])
def test_random_access_reads_from_the_preceding_key_chunk_only(predicted_file: bytes, frame: int,
                                                               chunks: list[int]) -> None:
    with invrcodec.open(io.BytesIO(predicted_file)) as f:
        whole = np.stack(list(f.decode()))
        index = f.index
    reader = CountingReader(predicted_file)
    with invrcodec.open(reader) as f:
        reader.reads.clear()
        (one,) = list(f.decode(first_frame=frame, frame_count=1))
    assert _chunks_read(reader, index) == chunks
    assert (one == whole[frame]).all()


def test_invr_dec_seek_decodes_from_the_key_chunk(predicted_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "p.invr"
    path.write_bytes(predicted_file)
    proc = run(["invr-dec", *FAST_DEC, "-q", "-f", "rawvideo", "--seek", "15", "--frames", "1", path, "-"])
    assert proc.returncode == 0, proc.stderr
    with invrcodec.open(path) as f:
        whole = np.stack(list(f.decode()))
    assert proc.stdout == whole[15].tobytes()


def test_a_p_chunk_without_its_reference_is_refused(predicted_file: bytes) -> None:
    with invrcodec.open(io.BytesIO(predicted_file)) as f:
        packets = list(f.demux())
        decoder = Decoder(f.header)
    with pytest.raises(InvrFormatError, match="chunk 5: predicted from chunk 4, which was not decoded"):
        decoder.weights(packets[5])
    decoder.weights(packets[4])
    decoder.weights(packets[5])
    with pytest.raises(InvrFormatError, match="chunk 7: predicted from chunk 6"):
        decoder.weights(packets[7])


def _rewrite_prediction_in_index(data: bytes, chunk: int, value: int) -> bytes:
    """The file with index entry ``chunk``'s prediction byte set to ``value`` and the index CRC recomputed."""
    with invrcodec.open(io.BytesIO(data)) as f:
        index = f.index
    index_offset = index[-1].offset + index[-1].size
    length = int.from_bytes(data[index_offset + 4:index_offset + 8], "little")
    body = bytearray(data[index_offset + 8:index_offset + 8 + length])
    body[4 + fmt.INDEX_ENTRY.sizeof() * chunk + 32] = value
    record = fmt.build_record(fmt.TAG_INDEX, bytes(body))
    return data[:index_offset] + record + data[index_offset + len(record):]


def test_index_and_chunk_disagreeing_on_prediction_is_refused(predicted_file: bytes) -> None:
    bad = _rewrite_prediction_in_index(predicted_file, 5, 0)
    with invrcodec.open(io.BytesIO(bad)) as f, pytest.raises(MalformedError, match="chunk 5"):
        list(f.decode(first_frame=10, frame_count=1))


@pytest.mark.parametrize(("chunk", "value", "message"), [(0, 1, "chunk 0 must be a key chunk"),
                                                          (3, 2, "prediction: unknown id 2")])
def test_unlawful_predictions_are_refused(predicted_file: bytes, chunk: int, value: int, message: str) -> None:
    bad = _rewrite_prediction_in_index(predicted_file, chunk, value)
    with pytest.raises(MalformedError, match=message):
        invrcodec.open(io.BytesIO(bad))


def test_a_damaged_key_chunk_fails_the_p_chunks_after_it(predicted_file: bytes) -> None:
    with invrcodec.open(io.BytesIO(predicted_file)) as f:
        key = f.index[4]
    data = bytearray(predicted_file)
    data[key.offset + key.size // 2] ^= 0x40
    with invrcodec.open(io.BytesIO(bytes(data))) as f, pytest.raises(ChecksumError, match="chunk 4"):
        list(f.decode(first_frame=13, frame_count=1))
    with invrcodec.open(io.BytesIO(bytes(data))) as f:  # chunks before that key chunk are untouched
        assert len(list(f.decode(first_frame=0, frame_count=8))) == 8


def test_keyint_one_is_all_key_and_decodes_as_before(predicted_file: bytes) -> None:
    cfg = EncoderConfig.from_preset("ultrafast", chunk_frames=CHUNK, hidden=16, layers=2, steps=20,
                                    keyint=1, device="cpu")
    enc = Encoder(StreamInfo(16, 16, 0), cfg)
    kinds = {enc.prediction_of(i) for i in range(12)}
    assert kinds == {Prediction.KEY}
    enc0 = Encoder(StreamInfo(16, 16, 0), EncoderConfig.from_preset("ultrafast", keyint=0, device="cpu"))
    assert [enc0.prediction_of(i) for i in range(4)] == [Prediction.KEY] + [Prediction.PREVIOUS] * 3


class Pipe(io.RawIOBase):
    """A non-seekable stream over bytes, as a pipe reads."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), len(self._data) - self._pos, 4096)
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize(("frame", "first_chunk"), [(3, 0), (9, 4), (15, 4), (17, 8)])
def test_a_pipe_decodes_from_the_key_chunk_too(predicted_file: bytes, frame: int, first_chunk: int) -> None:
    with invrcodec.open(io.BytesIO(predicted_file)) as f:
        whole = np.stack(list(f.decode()))
    with invrcodec.open(io.BufferedReader(Pipe(predicted_file))) as f:
        assert [p.index for p in f.demux(frame, 1)][0] == first_chunk
    with invrcodec.open(io.BufferedReader(Pipe(predicted_file))) as f:
        (one,) = list(f.decode(first_frame=frame, frame_count=1))
    assert (one == whole[frame]).all()


def test_a_p_chunk_recipe_takes_the_p_fields() -> None:
    from invrcodec.net.fit import Recipe

    key = Recipe(steps=1000, lr=1.5e-3, warmup=50, l1=1e-6, eval_every=100, rate=1e5,
                 p_steps=0.4, p_lr=1e-3, p_warmup=30, p_l1=1e-5, p_rate=0.0)
    p = key.for_p_chunk()
    assert (p.steps, p.lr, p.warmup, p.l1, p.eval_every, p.rate) == (400, 1e-3, 30, 1e-5, 40, 0.0)
    assert Recipe(steps=100, lr=1e-3, p_steps=0.5, p_warmup=30).for_p_chunk().warmup_steps == 5  # a tenth
    assert Recipe(steps=100, lr=1e-3, warmup=20).for_p_chunk().warmup == 0  # the default: none
