"""What FFmpeg's Y4M reader does not say: a header it cannot use, a stream cut inside a frame.

PyAV reads Y4M (``yuv4mpegpipe``) itself; this module only reads the header line beside it, so that
:class:`invrcodec.media.pyav.VideoReader` can refuse a header FFmpeg would fail on with a message that says what is
wrong (FFmpeg answers "Device or resource busy" to a width of 0 and "no frames" to a frame larger than the
stream), and can tell, once the frames are read, whether the stream ended inside a frame FFmpeg then dropped.
Format: ``YUV4MPEG2 W<w> H<h> F<n>:<d> I<i> A<n>:<d> C<colour space> X<...>\\n``, then ``FRAME\\n`` and
the planes of each frame (../shared/guide/CLI.md, "Y4M").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from invrcodec.format.structs import LIMITS

__all__ = ["HEADER_LINE_MAX", "MAGIC", "Y4MHeader", "parse_header"]

MAGIC = b"YUV4MPEG2"
HEADER_LINE_MAX = 256  # FFmpeg's Y4M_LINE_MAX: the longest header line it reads
FRAME_HEADER = b"FRAME\n"
MAX_DIMENSION = LIMITS["max_dimension"]  # what an .invr file can hold (spec "Limits")

# Chroma subsampling (x, y) and planes of each colour space; p9..p16 suffixes take two bytes a sample.
_CHROMA = {
    "420jpeg": (2, 2, 3), "420mpeg2": (2, 2, 3), "420paldv": (2, 2, 3), "420": (2, 2, 3),
    "411": (4, 1, 3), "422": (2, 1, 3), "444": (1, 1, 3), "444alpha": (1, 1, 4), "mono": (1, 1, 1),
}


@dataclass(frozen=True)
class Y4MHeader:
    """The facts of a Y4M header line that size a frame."""

    width: int
    height: int
    colour: str  # the C token without its C ("420jpeg" when absent)
    length: int  # bytes of the header line, its newline included

    @property
    def frame_bytes(self) -> int | None:
        """Bytes of one frame's planes, or None for a colour space this module does not know."""
        m = re.fullmatch(r"(420jpeg|420mpeg2|420paldv|420|411|422|444alpha|444|mono)(?:p?(9|1[0-6]))?",
                         self.colour)
        if not m:
            return None
        sub_x, sub_y, planes = _CHROMA[m.group(1)]
        sample = 2 if m.group(2) else 1
        luma = self.width * self.height
        chroma = -(-self.width // sub_x) * -(-self.height // sub_y)
        alpha = luma if planes == 4 else 0
        return sample * (luma + (2 * chroma if planes >= 3 else 0) + alpha)

    def describe_cut(self, stream_bytes: int, frames: int) -> str | None:
        """If ``stream_bytes`` (the whole stream) ends inside frame ``frames`` (0-based), say so."""
        size = self.frame_bytes
        if size is None:
            return None
        per = len(FRAME_HEADER) + size
        left = stream_bytes - self.length - frames * per
        if 0 < left < per:
            return (f"the stream ends inside frame {frames} ({left} of its {per} bytes, "
                    f"{self.width}x{self.height} C{self.colour}); that partial frame is dropped")
        return None


def parse_header(head: bytes) -> Y4MHeader:
    """The header line at the start of ``head``; ValueError with a one-line reason when FFmpeg could not use
    it or an .invr file could not hold its frames."""
    end = head.find(b"\n", 0, HEADER_LINE_MAX)
    if not head.startswith(MAGIC):
        raise ValueError("not a Y4M stream (no YUV4MPEG2 at its start)")
    if end < 0:
        raise ValueError(f"Y4M header line has no end within {HEADER_LINE_MAX} bytes")
    fields: dict[str, str] = {}
    for token in head[len(MAGIC) : end].decode("latin-1").split():
        fields.setdefault(token[0], token[1:])
    size = []
    for key, name in (("W", "width"), ("H", "height")):
        text = fields.get(key)
        if text is None:
            raise ValueError(f"Y4M header has no {name} ({key}<n>): {_shown(head[:end])}")
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"Y4M header: {name} {key}{text} is not a positive number")
        if int(text) > MAX_DIMENSION:
            raise ValueError(f"Y4M header: {name} {int(text)} is over {MAX_DIMENSION}, the most INVR stores")
        size.append(int(text))
    return Y4MHeader(size[0], size[1], fields.get("C", "420jpeg"), end + 1)


def _shown(line: bytes) -> str:
    text = line.decode("latin-1")
    printable = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return repr(printable[:60] + ("..." if len(printable) > 60 else ""))
