"""Make samples/tiny.invr, the committed golden file, and print its annotated hex dump for the spec.

    python samples/make_golden.py            # encode a 16x16, 4-frame synthetic clip -> samples/tiny.invr
    python samples/make_golden.py --dump     # annotated hex dump of samples/tiny.invr (spec "Example")

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


def make(out: Path) -> None:
    from invrcodec.codec.encoder import Encoder, EncoderConfig

    clip = synthetic_clip()
    config = EncoderConfig.from_preset(
        "ultrafast", chunk_frames=2, hidden=16, layers=2, enc_dims=(4, 4, 2), steps=200, device="cpu", seed=0,
        keyint=8
    )
    enc = Encoder(STREAM, config)
    with invrcodec.open(out, "w", header=enc.header) as container:
        for frame in clip:
            container.mux(enc.encode(frame))
        container.mux(enc.encode(None))
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)


# --- annotated dump -------------------------------------------------------------------------------------


def _walk(
    struct: Any,
    stream: io.BytesIO,
    label: str,
    rows: list[tuple[int, bytes, str]],
    data: bytes,
    ctx: Any = None,
) -> Any:
    """Parse ``struct`` field by field, appending (offset, bytes, label) for every leaf field."""
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
    _walk(fmt.HEADER_BODY, s, "HeaderBody", rows, data)
    if s.tell() != body_end:
        raise SystemExit("header body length mismatch")
    rows.append((body_end, data[body_end : body_end + 4], "FileHeader.crc32"))
    s.seek(body_end + 4)
    chunk = 0
    bodies = {
        fmt.TAG_CHUNK: ("ChunkBody", fmt.CHUNK_BODY),
        fmt.TAG_INDEX: ("IndexBody", fmt.INDEX_BODY),
        fmt.TAG_TRAILER: ("TrailerBody", fmt.TRAILER_BODY),
    }
    while s.tell() < len(data):
        head = _walk(fmt.RECORD_HEAD, s, "Record", rows, data)
        name, struct = bodies[head.tag]
        end = s.tell() + head.length
        if head.tag == fmt.TAG_CHUNK and chunk >= full_chunks:
            rows.append((s.tell(), data[s.tell() : end], f"{name} of chunk {chunk} ({head.length} bytes)"))
            s.seek(end)
        else:
            _walk(struct, s, name, rows, data)
        chunk += head.tag == fmt.TAG_CHUNK
        rows.append((end, data[end : end + 4], "Record.crc32"))
        s.seek(end + 4)
    return rows


def dump(data: bytes, width: int = 8) -> str:
    """The annotated hex dump: offset, up to ``width`` bytes (then an ellipsis), field = value."""
    lines = []
    for offset, raw, label in annotate(data):
        shown = " ".join(f"{b:02x}" for b in raw[:width])
        if len(raw) > width:
            shown += " …"
        lines.append(f"{offset:08x}  {shown:<{3 * width + 1}}  {label}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", action="store_true", help="print the annotated hex dump and exit")
    parser.add_argument("--out", type=Path, default=GOLDEN)
    args = parser.parse_args()
    if args.dump:
        print(dump(args.out.read_bytes()))
        return
    make(args.out)


if __name__ == "__main__":
    main()
