"""Make samples/tiny.invr, the committed golden file, and print its annotated hex dump for the spec.

    python samples/make_golden.py            # encode a 16x16, 4-frame synthetic clip -> samples/tiny.invr
    python samples/make_golden.py --dump     # annotated hex dump of samples/tiny.invr (spec "Example")
    python samples/make_golden.py --audio    # tiny.invr's chunks and a tone -> samples/tiny-audio.invr (2.1)
    python samples/make_golden.py --dump --out samples/tiny-audio.invr   # spec "Example with audio"
    python samples/make_golden.py --tiles    # the same clip in 8x8 tiles -> samples/tiny-tiles.invr (3.0)
    python samples/make_golden.py --overlap  # those tiles overlapping by 2 -> samples/tiny-overlap.invr (4.0)

The golden file is made once and committed; tests/test_format.py checks that every future version still
reads it to the exact header it was written with. Re-making it is a deliberate act (the spec's dump and the
test's expected header then change with it).
"""

from __future__ import annotations

import argparse
import io
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

import invrcodec
from invrcodec.format import structs as fmt
from invrcodec.types import StreamInfo

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "tiny.invr"
GOLDEN_AUDIO = HERE / "tiny-audio.invr"
GOLDEN_TILES = HERE / "tiny-tiles.invr"
GOLDEN_OVERLAP = HERE / "tiny-overlap.invr"
TILE = (8, 8)  # tiny-tiles.invr and tiny-overlap.invr: four tiles of the 16x16 frame
OVERLAP = 2  # tiny-overlap.invr: each tile's network covers 10x10 pixels, 2 of them in each neighbour


#: The golden clip's stream facts. The frame count is unknown up front, as from a pipe: the muxer patches the
#: true count (4) on close. tests/test_format.py expects the file to read back to exactly these.
STREAM = StreamInfo(
    width=16,
    height=16,
    frame_count=0,
    frame_rate=Fraction(30000, 1001),
    time_base=Fraction(1001, 30000),
    sample_aspect_ratio=Fraction(1, 1),
    pix_fmt="yuv420p",
    color_range=1,
    color_space=1,
    color_primaries=1,
    color_trc=1,
)


def synthetic_clip(frames: int = 4, height: int = 16, width: int = 16) -> np.ndarray:
    """Smooth colour ramps that drift over time: uint8 (frames, H, W, 3) RGB."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    r = 128 + 100 * np.sin(2 * np.pi * (x + 2 * t) / width)
    g = 128 + 100 * np.cos(2 * np.pi * (y - t) / height)
    b = 64 + 8 * (x + y) + 10 * t
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).round().astype(np.uint8)


def make(out: Path, tile: tuple[int, int] | str = "none", overlap: int = 0) -> None:
    """Encode the golden clip to ``out``: in tiles of ``tile`` overlapping by ``overlap`` pixels (spec
    "Tiles"), never the encoder's automatic overlap, so that ``--tiles`` stays the 3.0 file it was."""
    from invrcodec.codec.encoder import Encoder, EncoderConfig

    clip = synthetic_clip()
    config = EncoderConfig.from_preset(
        "ultrafast", chunk_frames=2, hidden=16, layers=2, enc_dims=(4, 4, 2), steps=200, device="cpu", seed=0,
        keyint=8, tile=tile, overlap=overlap
    )
    enc = Encoder(STREAM, config)
    with invrcodec.open(out, "w", header=enc.header) as container:
        for frame in clip:
            container.mux(enc.encode(frame))
        container.mux(enc.encode(None))
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)


def tone_packets(seconds: float) -> tuple[Any, list[Any]]:
    """An AAC stream of a 440 Hz tone (8 kHz mono, 16 kbit/s, FFmpeg's encoder through PyAV): its
    AudioStreamInfo and its AudioPackets, the encoder's priming packet at pts -1024 first."""
    import av

    from invrcodec.types import AudioPacket, AudioStreamInfo

    rate = 8000
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = rate, "mono", "fltp", 16000
    ctx.time_base = Fraction(1, rate)
    ctx.open()
    n = int(rate * seconds)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)[None, :]
    frames = []
    for start in range(0, n, ctx.frame_size):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start : start + ctx.frame_size]),
                                           format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        frames.append(frame)
    coded = [p for f in [*frames, None] for p in ctx.encode(f)]
    info = AudioStreamInfo(codec="aac", sample_rate=rate, channels=1, channel_layout="mono",
                           time_base=Fraction(1, rate), frame_size=ctx.frame_size, bit_rate=16000,
                           extradata=bytes(ctx.extradata or b""))
    return info, [AudioPacket(0, p.pts, p.dts, p.duration, bytes(p), keyframe=p.is_keyframe) for p in coded]


def make_audio(out: Path, source: Path = GOLDEN) -> None:
    """tiny.invr's header (frame count 0, patched on close) and chunks, with a 0.3 s AAC tone (the video lasts
    0.13 s): a 2.1 file whose audio starts before the first frame (the encoder's priming) and ends after the
    last, so that an audio record follows the audio index."""
    import dataclasses

    with invrcodec.open(source) as f:
        header, packets = f.header, list(f.demux())
    header = dataclasses.replace(header, stream=dataclasses.replace(header.stream, frame_count=0))
    info, audio = tone_packets(0.3)
    with invrcodec.open(out, "w", header=header, audio=(info,)) as container:
        container.mux_audio(audio)
        container.mux(packets)
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)


# --- annotated dump -------------------------------------------------------------------------------------


def _walk(
    struct: Any,
    stream: io.BytesIO,
    label: str,
    rows: list[tuple[int, bytes, str]],
    data: bytes,
    ctx: Any = None,
    end: int | None = None,
) -> Any:
    """Parse ``struct`` field by field, appending (offset, bytes, label) for every leaf field; a trailing
    ``Name[*]`` field is walked item by item up to byte ``end``, and an AUDS extension's value as an
    AudioStream."""
    import construct as c

    context = c.Container(
        _=ctx,
        _params=c.Container(),
        _root=None,
        _parsing=True,
        _building=False,
        _sizing=False,
        _subcons=None,
        _io=stream,
        _index=None,
    )
    for sc in struct.subcons:
        if sc is c.Terminated:  # the dump walks one stream through the whole file
            continue
        inner = sc.subcon if isinstance(sc, c.Renamed) else sc
        start = stream.tell()
        name = f"{label}.{sc.name}" if sc.name else label
        if isinstance(inner, c.Struct):
            value = _walk(inner, stream, name, rows, data, context)
        elif isinstance(inner, c.GreedyRange) and isinstance(inner.subcon, c.Struct) and end is not None:
            value = []
            while stream.tell() < end:
                value.append(_walk(inner.subcon, stream, f"{name}[{len(value)}]", rows, data, context))
        elif sc.name == "value" and struct is fmt.EXTENSION and context.get("tag") == fmt.EXT_AUDIO_STREAM:
            end_of_value = start + context.length
            value = _walk(fmt.AUDIO_STREAM, stream, "AudioStream", rows, data, context, end_of_value)
        elif isinstance(inner, c.Array) and isinstance(inner.subcon, c.Struct):
            count = inner.count(context) if callable(inner.count) else inner.count
            value = [_walk(inner.subcon, stream, f"{name}[{i}]", rows, data, context) for i in range(count)]
        else:
            value = sc._parsereport(stream, context, "(dump)")
            raw = data[start : stream.tell()]
            if raw:
                if isinstance(value, bytes) and len(value) > 8:
                    shown = f"({len(value)} bytes)"
                elif isinstance(value, str) and len(value) > 40:
                    shown = repr(value[:32]) + f"... ({len(value.encode())} bytes)"
                else:
                    shown = repr(value)
                rows.append((start, raw, f"{name} = {shown}"))
        if sc.name:
            context[sc.name] = value
    return context


def annotate(data: bytes, full_chunks: int = 1) -> list[tuple[int, bytes, str]]:
    """(offset, bytes, label) rows covering ``data``; chunks after the first ``full_chunks`` are summarised."""
    rows: list[tuple[int, bytes, str]] = []
    s = io.BytesIO(data)
    pre = _walk(fmt.PREAMBLE, s, "Preamble", rows, data)
    body_end = s.tell() + pre.header_length
    body = {fmt.MAJOR_TILES: "HeaderBodyV3", fmt.MAJOR_OVERLAP: "HeaderBodyV4"}.get(pre.major, "HeaderBody")
    _walk(fmt.STRUCTS[body], s, body, rows, data, end=body_end)
    if s.tell() != body_end:
        raise SystemExit("header body length mismatch")
    rows.append((body_end, data[body_end : body_end + 4], "FileHeader.crc32"))
    s.seek(body_end + 4)
    chunk = 0
    bodies = {
        fmt.TAG_CHUNK: ("ChunkBody", fmt.CHUNK_BODY),
        fmt.TAG_INDEX: ("IndexBody", fmt.INDEX_BODY),
        fmt.TAG_TRAILER: ("TrailerBody", fmt.TRAILER_BODY),
        fmt.TAG_AUDIO: ("AudioPacketsBody", fmt.AUDIO_PACKETS_BODY),
        fmt.TAG_AUDIO_INDEX: ("AudioIndexBody", fmt.AUDIO_INDEX_BODY),
    }
    while s.tell() < len(data):
        head = _walk(fmt.RECORD_HEAD, s, "Record", rows, data)
        name, struct = bodies[head.tag]
        end = s.tell() + head.length
        if head.tag == fmt.TAG_CHUNK and chunk >= full_chunks:
            rows.append((s.tell(), data[s.tell() : end], f"{name} of chunk {chunk} ({head.length} bytes)"))
            s.seek(end)
        else:
            _walk(struct, s, name, rows, data, end=end)
        chunk += head.tag == fmt.TAG_CHUNK
        rows.append((end, data[end : end + 4], "Record.crc32"))
        s.seek(end + 4)
    return rows


def dump(data: bytes, width: int = 8, full_chunks: int | None = None) -> str:
    """The annotated hex dump: offset, up to ``width`` bytes (then an ellipsis), field = value. A file with
    audio shows every chunk summarised (tiny.invr's dump shows one in full), unless ``full_chunks`` says."""
    if full_chunks is None:
        full_chunks = 0 if fmt.TAG_AUDIO_INDEX in data else 1
    lines = []
    for offset, raw, label in annotate(data, full_chunks):
        shown = " ".join(f"{b:02x}" for b in raw[:width])
        if len(raw) > width:
            shown += " …"
        lines.append(f"{offset:08x}  {shown:<{3 * width + 1}}  {label}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", action="store_true", help="print the annotated hex dump and exit")
    parser.add_argument("--audio", action="store_true", help="make the 2.1 golden file with audio")
    parser.add_argument("--tiles", action="store_true", help="make the 3.0 golden file with a tile grid")
    parser.add_argument("--overlap", action="store_true", help="make the 4.0 golden file: tiles that overlap")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or (GOLDEN_AUDIO if args.audio else GOLDEN_TILES if args.tiles else
                       GOLDEN_OVERLAP if args.overlap else GOLDEN)
    if args.dump:
        print(dump(out.read_bytes()))
        return
    if args.audio:
        make_audio(out)
        return
    if args.overlap:
        make(out, TILE, OVERLAP)
        return
    make(out, TILE if args.tiles else "none")


if __name__ == "__main__":
    main()
