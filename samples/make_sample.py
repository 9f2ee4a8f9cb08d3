#!/usr/bin/env python3
"""Make the demo clip: a synthetic video from FFmpeg's own test sources, through PyAV (no media is copied).

    python samples/make_sample.py out/sample.mp4                       # 64x64, 30 frames of testsrc2
    python samples/make_sample.py --source mandelbrot --size 128x128 --frames 45 out/m.mp4

The sources are libavfilter's generators (``testsrc2``, ``mandelbrot``, ``gradients``, ``smptehdbars``...),
run through an ``av.filter.Graph``; the clip is written with libx264 (4:2:0, near-lossless) or, for ``.y4m``,
as raw Y4M. The output format follows the extension.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import av


def source_frames(source: str, width: int, height: int, rate: Fraction, frames: int):  # type: ignore[no-untyped-def]
    """Yield ``frames`` VideoFrames from the lavfi generator ``source`` (a name, optionally with options)."""
    name, _, extra = source.partition("=")
    args = f"size={width}x{height}:rate={rate.numerator}/{rate.denominator}"
    if extra:
        args += ":" + extra
    graph = av.filter.Graph()
    src = graph.add(name, args)
    fmt = graph.add("format", "pix_fmts=yuv420p")
    sink = graph.add("buffersink")
    src.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    for _ in range(frames):
        try:
            frame = sink.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            break
        yield frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="output file (.mp4, .mkv or .y4m)")
    parser.add_argument("--source", default="testsrc2", help="lavfi source, e.g. testsrc2, mandelbrot, gradients")
    parser.add_argument("--size", default="64x64", help="WxH (default 64x64)")
    parser.add_argument("--frames", type=int, default=30, help="number of frames (default 30)")
    parser.add_argument("--rate", default="25", help="frame rate, e.g. 25 or 30000/1001 (default 25)")
    parser.add_argument("-y", action="store_true", help="overwrite the output")
    args = parser.parse_args(argv)

    width, height = (int(v) for v in args.size.lower().split("x"))
    rate = Fraction(args.rate)
    out: Path = args.output
    if out.exists() and not args.y:
        print(f"make_sample: {out} exists (use -y to overwrite)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    ext = out.suffix.lower()
    fmt = {".y4m": "yuv4mpegpipe", ".mkv": "matroska", ".mp4": "mp4"}.get(ext)
    if fmt is None:
        print(f"make_sample: use .mp4, .mkv or .y4m, not {ext!r}", file=sys.stderr)
        return 2
    tmp = out.with_name(f".{out.name}.part")
    count = 0
    try:
        with av.open(str(tmp), "w", format=fmt) as container:
            if fmt == "yuv4mpegpipe":
                stream = container.add_stream("wrapped_avframe", rate=rate)
            else:
                stream = container.add_stream("libx264", rate=rate, options={"crf": "12", "preset": "medium"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in source_frames(args.source, width, height, rate, args.frames):
                frame.pts = count
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
            for packet in stream.encode(None):
                container.mux(packet)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"make_sample: {out}: {args.source} {width}x{height} @ {args.rate} fps, {count} frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
